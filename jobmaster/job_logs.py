"""Reading the log lines of jobs: one attempt's, followed live while it runs, or searched over a
queue's recent jobs. :class:`JobLogs` holds the public methods :class:`jobmaster.Registry`
offers (``jobmaster logs`` uses them); following goes through
:class:`jobmaster.store.log_feed.LogFeed`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator

from jobmaster.errors import JobNotFound, redis_errors
from jobmaster.keys import attempt_field
from jobmaster.models import JobLogLine, JobState, LogLine
from jobmaster.queries import Queries
from jobmaster.records import decode_log
from jobmaster.registry_view import RegistryView
from jobmaster.store.log_feed import FeedRead, LogFeed

FOLLOW_MS = 30_000
"""How long a follower stays listed without renewing (it renews three times as often)."""
WAITING_STATES = frozenset({JobState.QUEUED, JobState.SCHEDULED, JobState.BLOCKED})
SEARCHED_STATES = (JobState.ACTIVE, JobState.FAILED, JobState.SUCCEEDED, JobState.CANCELLED)


class JobLogs:
    """Log lines of jobs; a part of :class:`jobmaster.Registry`."""

    def logs(
        self: RegistryView, job_id: str, *, queue: str | None = None,
        attempt: int | None = None, follow: bool = False,
    ) -> AsyncGenerator[JobLogLine, None]:  # fmt: skip
        """The log lines of one attempt of a job (default: its latest), oldest first.

        With ``follow``, lines keep coming as the attempt writes them until it ends (a
        blocking read, no polling); a job still waiting is followed from the start of its
        next attempt. An async generator: ``aclose()`` it to stop following early.

        Raises:
            JobNotFound: no such job (or attempt).
            ValueError: ``attempt`` is not a positive integer.
        """
        if attempt is not None and (isinstance(attempt, bool) or not isinstance(attempt, int)):
            raise ValueError(f"attempt must be a positive integer, got {attempt!r}")
        if attempt is not None and attempt < 1:
            raise ValueError(f"attempt must be a positive integer, got {attempt!r}")
        return _logs(self, job_id, queue, attempt, follow)

    async def search_logs(
        self: RegistryView, queue: str, pattern: str, *, limit: int = 50
    ) -> list[JobLogLine]:
        """The log lines matching the regular expression ``pattern`` (searched in the
        event and its fields as JSON) among the ``limit`` most recently created jobs of
        ``queue`` that ran (active or finished), newest job first.

        Raises:
            ValueError: ``pattern`` is not a regular expression, or ``limit`` < 1.
        """
        try:
            expression = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {pattern!r} ({exc})") from None
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be an integer >= 1, got {limit!r}")
        queries = Queries(self)
        found = []
        for state in SEARCHED_STATES:
            found += await queries.list_jobs(
                queue, state, offset=0, limit=limit, name=None, tag=None, scan_limit=limit
            )
        found.sort(key=lambda job: job.created_at, reverse=True)
        matched: list[JobLogLine] = []
        for summary in found[:limit]:
            try:
                job = await queries.find(summary.id, queue)
                info = await job.info()
            except JobNotFound:  # pruned meanwhile
                continue
            for attempt in info.attempts:
                for line in attempt.logs:
                    if expression.search(_searchable(line)):
                        matched.append(_with_job(line, info.id, attempt.number))
        return matched


def _searchable(line: LogLine) -> str:
    if not line.fields:
        return line.event
    return f"{line.event} {json.dumps(line.fields, default=str, sort_keys=True)}"


def _with_job(line: LogLine, job_id: str, attempt: int) -> JobLogLine:
    return JobLogLine(
        at=line.at, level=line.level, event=line.event, fields=line.fields, job_id=job_id,
        attempt=attempt,
    )  # fmt: skip


def _decoded(data: bytes, job_id: str, attempt: int) -> list[JobLogLine]:
    return [_with_job(line, job_id, attempt) for line in decode_log(data)[0]]


async def _logs(
    registry: RegistryView, job_id: str, queue: str | None, attempt: int | None, follow: bool
) -> AsyncGenerator[JobLogLine, None]:
    queue = (await Queries(registry).find(job_id, queue)).queue
    feed = registry.connection().store.log_feed
    with redis_errors(f"reading the logs of job {job_id}", registry.settings.redis_url):
        if not follow:
            _, count = await feed.state(queue, job_id)
            number = _chosen(job_id, attempt, count)
            for line in _decoded(await feed.lines(queue, job_id, number), job_id, number):
                yield line
            return
        try:
            async for line in _follow(registry, queue, job_id, attempt):
                yield line
        finally:
            await feed.unfollow(queue, job_id)


def _chosen(job_id: str, attempt: int | None, count: int) -> int:
    """The attempt asked for (default: the latest), which must exist."""
    number = count if attempt is None else attempt
    if not 1 <= number <= count:
        which = "no attempt yet" if count == 0 else f"{count} attempt(s)"
        raise JobNotFound(f"job {job_id!r} has {which}; there is no attempt {number}")
    return number


async def _follow(
    registry: RegistryView, queue: str, job_id: str, attempt: int | None
) -> AsyncIterator[JobLogLine]:
    """The lines of the attempt followed: those written so far, then those that come until
    it ends."""
    feed = registry.connection().store.log_feed
    position, state, count = await feed.follow(queue, job_id, FOLLOW_MS)
    if state is None:
        raise JobNotFound(f"no job {job_id!r} in queue {queue!r}")
    waiting = state in WAITING_STATES and attempt is None
    follower = _Follower(feed, queue, job_id, 0 if waiting else _chosen(job_id, attempt, count))
    if follower.number:
        for line in await follower.rest():
            yield line
        if state is not JobState.ACTIVE or follower.number != count:
            return  # the attempt has ended
    renewed = time.monotonic()
    while not follower.ended:
        read = await feed.read(queue, position, FOLLOW_MS // 3)
        for line in await follower.take(read):
            yield line
        if time.monotonic() - renewed > FOLLOW_MS / 3000:
            await feed.follow(queue, job_id, FOLLOW_MS)
            renewed = time.monotonic()


class _Follower:
    """The attempt followed (number 0: the job's next one, not started yet), and how many
    bytes of its log were read."""

    def __init__(self, feed: LogFeed, queue: str, job_id: str, number: int) -> None:
        self.feed, self.queue, self.job_id, self.number = feed, queue, job_id, number
        self.have = 0
        self.ended = False

    async def rest(self) -> list[JobLogLine]:
        """The lines of the attempt's log not read yet."""
        data = (await self.feed.lines(self.queue, self.job_id, self.number))[self.have :]
        self.have += len(data)
        return _decoded(data, self.job_id, self.number)

    async def take(self, read: FeedRead) -> list[JobLogLine]:
        """The new lines of a read of the feed (the job's state changes tell when the
        attempt starts and ends)."""
        lines: list[JobLogLine] = []
        field = attempt_field(self.job_id, self.number)
        for written, offset, chunk in read.lines:
            if written != field or offset + len(chunk) <= self.have:
                continue
            if offset != self.have:  # some came while this follower was not listed
                lines += await self.rest()
            else:
                lines += _decoded(chunk, self.job_id, self.number)
                self.have += len(chunk)
        for changed, state in read.changes:
            if changed != self.job_id or self.ended:
                continue
            if self.number == 0 and state == JobState.ACTIVE:  # the attempt to follow started
                _, self.number = await self.feed.state(self.queue, self.job_id)
            elif self.number and state != JobState.ACTIVE:  # it ended: its last lines
                lines += await self.rest()
                self.ended = True
        return lines
