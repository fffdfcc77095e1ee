"""Following an attempt's log lines as they are written (``jobmaster logs -f``).

A follower lists its job in the queue's ``log_followers`` (renewed while it follows; the key
expires with the last follower), and ``record_output.lua`` then copies what it appends to the
job's attempts to the queue's capped ``log_feed`` stream, with the byte offset it was
appended at. The follower reads the feed and the queue's events (to see the attempt end)
with one blocking ``XREAD``: no polling. The offsets let it join the lines it read from the
``logs`` hash with those of the feed without a gap or a repeat.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from jobmaster.codec import load_json
from jobmaster.keys import attempt_field
from jobmaster.models import JobState
from jobmaster.records import status_state
from jobmaster.store.connection import StoreConnection


@dataclass(slots=True)
class FeedPosition:
    """Where a follower reads from: the newest entry it saw of the log feed and events."""

    feed: bytes = b"0-0"
    events: bytes = b"0-0"


@dataclass(frozen=True, slots=True)
class FeedRead:
    """What one blocking read brought."""

    lines: list[tuple[str, int, bytes]] = field(default_factory=list)
    """(attempt field, byte offset, lines) appended to attempts of followed jobs."""
    changes: list[tuple[str, str]] = field(default_factory=list)
    """(job id, state) of the queue's jobs that changed state."""


class LogFeed:
    """The log feed of followed jobs, per queue."""

    def __init__(self, conn: StoreConnection) -> None:
        self._redis = conn.redis
        self._keys = conn.keys

    async def follow(
        self, queue: str, job_id: str, follow_ms: int
    ) -> tuple[FeedPosition, JobState | None, int]:
        """List ``job_id`` as followed for ``follow_ms`` (call it again before then to go
        on); where to read the feed and events from, with the job's state and attempt count
        as of that point (None, 0: no such job)."""
        k = self._keys.queue(queue)
        now = int(time.time() * 1000)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(k.log_followers, "-inf", now)
            pipe.zadd(k.log_followers, {job_id: now + follow_ms})
            pipe.pexpire(k.log_followers, follow_ms)
            pipe.xrevrange(k.log_feed, count=1)
            pipe.xrevrange(k.events, count=1)
            pipe.hget(k.status, job_id)
            *_, feed, events, raw = await pipe.execute()
        position = FeedPosition(feed[0][0] if feed else b"0-0", events[0][0] if events else b"0-0")
        if not raw:
            return position, None, 0
        return position, status_state(raw), int(load_json(raw).get("a", 0))

    async def unfollow(self, queue: str, job_id: str) -> None:
        """Stop listing ``job_id`` as followed."""
        await self._redis.zrem(self._keys.queue(queue).log_followers, job_id)

    async def state(self, queue: str, job_id: str) -> tuple[JobState | None, int]:
        """A job's state and attempt count (None, 0: no such job)."""
        raw: Any = await self._redis.hget(self._keys.queue(queue).status, job_id)  # type: ignore[misc]
        if not raw:
            return None, 0
        return status_state(raw), int(load_json(raw).get("a", 0))

    async def lines(self, queue: str, job_id: str, attempt: int) -> bytes:
        """The log lines kept for one attempt (concatenated msgpack)."""
        field_name = attempt_field(job_id, attempt)
        raw: Any = await self._redis.hget(self._keys.queue(queue).logs, field_name)  # type: ignore[misc]
        return bytes(raw or b"")

    async def read(self, queue: str, position: FeedPosition, block_ms: int) -> FeedRead:
        """Wait up to ``block_ms`` for new feed entries or events; ``position`` moves past
        what was read."""
        k = self._keys.queue(queue)
        reply: Any = await self._redis.xread(
            {k.log_feed: position.feed, k.events: position.events}, block=block_ms
        )
        read = FeedRead()
        for stream, entries in reply or ():
            name = stream.decode() if isinstance(stream, bytes) else stream
            for entry_id, fields in entries:
                if name == k.log_feed:
                    position.feed = entry_id
                    read.lines.append(
                        (fields[b"f"].decode(), int(fields[b"o"]), bytes(fields[b"l"]))
                    )
                else:
                    position.events = entry_id
                    for job_id, state in load_json(fields[b"d"]):
                        read.changes.append((job_id, state))
        return read
