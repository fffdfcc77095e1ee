"""Reading: queues, jobs with their attempts, indexes, counts, the server's clock and the
events of job changes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jobmaster.codec import load_json
from jobmaster.keys import QueueKeys, attempt_end_field, attempt_field
from jobmaster.models import Attempt, Job, JobState, JobSummary
from jobmaster.records import (
    attempt_count,
    blocked_by,
    decode_attempt,
    decode_job,
    decode_summary,
    status_state,
)
from jobmaster.store.connection import ASCENDING_STATES, StoreConnection
from jobmaster.store.holds import held_back, held_back_of_page
from jobmaster.store.stream_reads import StreamReader
from jobmaster.store.types import Event


class InspectionCommands:
    """Every read a client or dashboard makes of jobs and queues."""

    def __init__(self, conn: StoreConnection) -> None:
        self._conn = conn
        self.redis = conn.redis
        self.keys = conn.keys

    async def queues(self) -> list[str]:
        """The names of the queues that ever had a job or a schedule, sorted."""
        names: Any
        if self._conn.fast is not None:  # cancelled (a feed that stops), it ends at once
            names = await self._conn.fast.execute("SMEMBERS", self.keys.queues)
        else:
            names = await self.redis.smembers(self.keys.queues)  # type: ignore[misc]
        return sorted(n.decode() for n in names)

    async def locate(self, job_id: str) -> list[str]:
        """The queues holding a job with this id (ids are unique within a queue)."""
        return await self._conn.holding(await self.queues(), lambda k: k.status, job_id)

    async def position_and_state(self, queue: str, job_id: str) -> tuple[bytes, JobState | None]:
        """The newest event id of a queue and a job's state, read atomically (MULTI)."""
        k = self.keys.queue(queue)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xrevrange(k.events, count=1)
            pipe.hget(k.status, job_id)
            newest, raw = await pipe.execute()
        return (newest[0][0] if newest else b"0-0"), (status_state(raw) if raw else None)

    async def state(self, queue: str, job_id: str) -> JobState | None:
        raw: Any = await self.redis.hget(self.keys.queue(queue).status, job_id)  # type: ignore[misc]
        return status_state(raw) if raw else None

    async def job(self, queue: str, job_id: str, *, with_logs: bool = True) -> Job | None:
        """A job with every attempt (and their log lines), or None when it does not exist."""
        k = self.keys.queue(queue)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(k.jobs, job_id)
            pipe.hget(k.status, job_id)
            pipe.hget(k.limits, job_id)
            self._queue_result(pipe, k, job_id)
            record_raw, status_raw, line, *result_replies = await pipe.execute()
        if record_raw is None or status_raw is None:
            return None
        result_raw = await self._live_result(result_replies)
        attempts = await self._attempts(k, job_id, attempt_count(status_raw), with_logs)
        job = decode_job(job_id, queue, record_raw, status_raw, result_raw, attempts)
        if line is not None and job.state is JobState.QUEUED:
            why = (await held_back(self.redis, k, [(job_id, line)])).get(job_id)
            job = job.model_copy(update={"held_back": why})
        if job.state is JobState.BLOCKED:  # what it still waits on (relations.lua)
            raw: Any = await self.redis.hget(k.waits, job_id)  # type: ignore[misc]
            job = job.model_copy(update={"blocked_by": blocked_by(raw)})
        return job

    async def _attempts(
        self, k: QueueKeys, job_id: str, count: int, with_logs: bool
    ) -> list[Attempt]:
        if count == 0:
            return []
        numbers = range(1, count + 1)
        fields = [attempt_field(job_id, n) for n in numbers]
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(k.attempts, fields)
            pipe.hmget(k.attempts, [attempt_end_field(job_id, n) for n in numbers])
            pipe.hmget(k.logs, fields) if with_logs else pipe.echo(b"")
            pipe.hmget(k.progress, fields)
            opened, ended, raw_logs, raw_progress = await pipe.execute()
        if not with_logs:
            raw_logs = [None] * count
        return [
            decode_attempt(n, a, end, logs, progress)
            for n, a, end, logs, progress in zip(
                numbers, opened, ended, raw_logs, raw_progress, strict=True
            )
            if a is not None or end is not None
        ]

    async def result(self, queue: str, job_id: str) -> bytes | None:
        """A job's stored result; None once its ttl has passed (even before it is pruned)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            self._queue_result(pipe, self.keys.queue(queue), job_id)
            replies = await pipe.execute()
        return await self._live_result(replies)

    def _queue_result(self, pipe: Any, k: QueueKeys, job_id: str) -> None:
        """Queue the reads :meth:`_live_result` needs on a pipeline (the server's clock too,
        on one server: a cluster's pipelines take keyed commands only)."""
        pipe.hget(k.results, job_id)
        pipe.zscore(k.result_expiry, job_id)
        if not self._conn.cluster:
            pipe.time()

    async def _live_result(self, replies: list[Any]) -> bytes | None:
        """The result read by :meth:`_queue_result`, or None if its ttl has passed (on a
        cluster, the clock is read after, only for a result that has a ttl)."""
        raw, expires_ms, *server_time = replies
        if raw is not None and expires_ms is not None and not server_time:
            server_time = [await self.redis.time()]
        return _live_result(raw, expires_ms, server_time[0] if server_time else (0, 0))

    async def count(self, queue: str, state: JobState) -> int:
        return int(await self.redis.zcard(self.keys.queue(queue).index(state.value)))

    async def counts(self, queue: str) -> dict[JobState, int]:
        """Jobs per state in a queue: one ZCARD per state, in one round trip."""
        states = list(JobState)
        k = self.keys.queue(queue)
        async with self.redis.pipeline(transaction=False) as pipe:
            for state in states:
                pipe.zcard(k.index(state.value))
            replies = await pipe.execute()
        return {s: int(n) for s, n in zip(states, replies, strict=True)}

    async def list_jobs(
        self,
        queue: str,
        state: JobState,
        *,
        offset: int = 0,
        limit: int = 50,
        name: str | None = None,
        tag: str | None = None,
        scan_limit: int = 10_000,
    ) -> list[JobSummary]:
        """One page of a queue's jobs in a state: newest first (scheduled: soonest due first).

        With ``name`` or ``tag``, the newest ``scan_limit`` jobs of the state are read in
        chunks and filtered; ``offset`` and ``limit`` then count matching jobs.
        """
        if name is None and tag is None:
            page = await self._page(queue, state, offset, offset + limit - 1)
            return await self._with_held_back(queue, page)
        matches: list[JobSummary] = []
        skipped = 0
        chunk = 500
        for start in range(0, scan_limit, chunk):
            page = await self._page(queue, state, start, min(start + chunk, scan_limit) - 1)
            for job in page:
                if (name is None or job.name == name) and (tag is None or tag in job.tags):
                    if skipped < offset:
                        skipped += 1
                        continue
                    matches.append(job)
                    if len(matches) == limit:
                        return await self._with_held_back(queue, matches)
            if len(page) < chunk:
                break
        return await self._with_held_back(queue, matches)

    async def _with_held_back(self, queue: str, page: list[JobSummary]) -> list[JobSummary]:
        """The page with ``held_back`` set on its queued jobs that wait off their stream."""
        queued = [job.id for job in page if job.state is JobState.QUEUED]
        held = await held_back_of_page(self.redis, self.keys.queue(queue), queued)
        if not held:
            return page
        return [
            job.model_copy(update={"held_back": held[job.id]}) if job.id in held else job
            for job in page
        ]

    async def _page(self, queue: str, state: JobState, start: int, stop: int) -> list[JobSummary]:
        k = self.keys.queue(queue)
        index = k.index(state.value)
        ids: Any
        if state in ASCENDING_STATES:
            ids = await self.redis.zrange(index, start, stop)
        else:
            ids = await self.redis.zrevrange(index, start, stop)
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(k.jobs, ids)
            pipe.hmget(k.status, ids)
            records, statuses = await pipe.execute()
        return [
            decode_summary(job_id.decode(), queue, record, status)
            for job_id, record, status in zip(ids, records, statuses, strict=True)
            if record is not None and status is not None
        ]

    async def stats(
        self, queue: str, buckets: int, bucket_ms: int
    ) -> tuple[dict[JobState, int], int | None, int, list[int], list[int]]:
        """Counts per state, the oldest waiting job's enqueue time (ms), the end of the last
        bucket (the server's now, ms) and the jobs that succeeded and failed per bucket,
        oldest bucket first, from the finished indexes (so within the retention)."""
        seconds, micros = await self.redis.time()
        now = seconds * 1000 + micros // 1000
        k = self.keys.queue(queue)
        states = list(JobState)
        first = now - buckets * bucket_ms
        async with self.redis.pipeline(transaction=False) as pipe:
            for state in states:
                pipe.zcard(k.index(state.value))
            pipe.zrange(k.index("queued"), 0, 0, withscores=True)
            for index in (k.index("succeeded"), k.index("failed")):
                for b in range(buckets):
                    low = first + b * bucket_ms
                    pipe.zcount(index, low, f"({low + bucket_ms}")
            replies = await pipe.execute()
        counts = {s: int(n) for s, n in zip(states, replies, strict=False)}
        oldest = replies[len(states)]
        done = [int(n) for n in replies[len(states) + 1 :]]
        oldest_ms = int(oldest[0][1]) if oldest else None
        return counts, oldest_ms, now, done[:buckets], done[buckets:]

    async def server_time_ms(self) -> int:
        """The server's clock (ms); on a cluster, the clock of the master of the list of
        queues (over the multiplexed connection where there is one: cancelled, its wait
        ends at once)."""
        fast = self._conn.fast
        if fast is not None:
            node = await fast.node_for(self.keys.queues)
            seconds, micros = await node.execute("TIME")
        else:
            seconds, micros = await self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def job_states(self, queue: str, job_ids: Sequence[str]) -> list[JobState | None]:
        """The states of jobs of one queue (None for those that do not exist)."""
        if not job_ids:
            return []
        raws: Any = await self.redis.hmget(self.keys.queue(queue).status, list(job_ids))  # type: ignore[misc]
        return [status_state(raw) if raw else None for raw in raws]

    # -- events ------------------------------------------------------------------------------

    def new_reader(self) -> StreamReader:
        """Connections of the caller's own for its blocking reads of events (pass it to
        :meth:`read_event_batch`; the caller closes it)."""
        return self._conn.new_reader()

    async def read_events(
        self, positions: dict[str, bytes], block_ms: int | None, count: int = 1000
    ) -> list[Event]:
        """Events after ``positions`` (updated in place), waiting up to ``block_ms``."""
        events, _ = await self.read_event_batch(positions, block_ms, count)
        return events

    async def read_event_batch(
        self,
        positions: dict[str, bytes],
        block_ms: int | None,
        count: int = 1000,
        reader: StreamReader | None = None,
    ) -> tuple[list[Event], int]:
        """Events after ``positions`` (updated in place, past the entries that cannot be
        decoded too), waiting up to ``block_ms`` (on ``reader`` if given, a connection of
        :meth:`new_reader`); and how many entries were skipped as undecodable."""
        by_stream = {self.keys.queue(q).events: q for q in positions}
        streams: dict[Any, Any] = {self.keys.queue(q).events: pos for q, pos in positions.items()}
        if reader is None:  # redis-py's pool: concurrent callers do not wait on each other
            reader = StreamReader(self.redis, None, cluster=self._conn.cluster)
        reply = await reader.xread(streams, count=count, block_ms=block_ms)
        events: list[Event] = []
        skipped = 0
        for stream, entries in reply or []:
            queue = by_stream[stream.decode() if isinstance(stream, bytes) else stream]
            for entry_id, fields in entries:
                positions[queue] = entry_id
                try:
                    events.extend(_decode_event(queue, entry_id, fields))
                except Exception:  # a corrupt entry must not stop the feed
                    skipped += 1
        return events, skipped


def _live_result(raw: Any, expires_ms: Any, server_time: Any) -> bytes | None:
    """The result read by ``_queue_result``, or None if its ttl has passed."""
    seconds, micros = server_time
    if raw is None or (expires_ms is not None and expires_ms <= seconds * 1000 + micros // 1000):
        return None
    return bytes(raw)


def _decode_event(queue: str, entry_id: bytes, fields: Any) -> list[Event]:
    if isinstance(fields, list):  # a raw reply: [field, value, ...]
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    at_ms = int(entry_id.split(b"-", 1)[0])
    events = []
    for change in load_json(fields[b"d"]):
        if len(change) > 2:  # a group's change: [group id, state, "group"]
            events.append(Event(queue, str(change[0]), JobState(change[1]), at_ms, group=True))
        else:
            events.append(Event(queue, str(change[0]), JobState(change[1]), at_ms))
    return events
