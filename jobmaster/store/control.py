"""Operations on one job (cancel, reschedule, update, retry, delete), and the stream of
cancellation requests that tells a worker to stop a running job."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jobmaster.store.connection import GROUP, StoreConnection
from jobmaster.store.replies import (
    JobOperation,
    cancel_reply,
    control_message,
    delete_reply,
    retry_reply,
    waiting_job_reply,
)
from jobmaster.store.types import ControlMessage


class ControlCommands:
    """Each operation on one job is one script call, atomic against a worker claiming it."""

    def __init__(self, conn: StoreConnection) -> None:
        self._conn = conn
        self._redis = conn.redis
        self._keys = conn.keys
        self._lists = conn.lists
        self._events_maxlen = conn.events_maxlen
        self._cancel = conn.script("cancel")
        self._reschedule = conn.script("reschedule")
        self._update = conn.script("update")
        self._retry = conn.script("retry")
        self._delete = conn.script("delete")

    async def cancel(self, queue: str, job_id: str, reason: str) -> JobOperation:
        """Cancel a job: done (it will never run), requested (it runs: its worker is told),
        refused (it had finished: ``state`` says how) or missing."""
        answer = await self._cancel(
            self._lists(queue).cancel, (job_id, reason, self._events_maxlen)
        )
        return cancel_reply(answer)

    async def reschedule(self, queue: str, job_id: str, delay_ms: int) -> JobOperation:
        """Move a job that has not started: done (``state``: queued or scheduled after),
        refused (it started) or missing."""
        answer = await self._reschedule(
            self._lists(queue).reschedule, (job_id, delay_ms, GROUP, self._events_maxlen)
        )
        return waiting_job_reply(answer)

    async def update(self, queue: str, job_id: str, record: bytes, band: int) -> JobOperation:
        """Replace a waiting job's record and/or band (-1: keep): done, refused (it started)
        or missing."""
        answer = await self._update(
            self._lists(queue).update, (job_id, record, band, GROUP, self._events_maxlen)
        )
        return waiting_job_reply(answer)

    async def retry(self, queue: str, job_id: str) -> JobOperation:
        """Queue a failed or cancelled job again: done, refused (it is in another state) or
        missing."""
        answer = await self._retry(self._lists(queue).retry, (job_id, GROUP, self._events_maxlen))
        return retry_reply(answer)

    async def delete(self, queue: str, job_id: str) -> JobOperation:
        """Delete a finished job: done, refused (it has not finished) or missing."""
        return delete_reply(await self._delete(self._lists(queue).delete, (job_id,)))

    async def read_control(
        self, positions: dict[str, bytes], block_ms: int
    ) -> list[ControlMessage]:
        """Messages after ``positions`` (updated in place): cancellation requests, and the
        pauses and resumptions of queues."""
        by_stream = {self._keys.queue(q).control: q for q in positions}
        streams: dict[Any, Any] = {self._keys.queue(q).control: p for q, p in positions.items()}
        reply = await self._conn.reader("control").xread(streams, block_ms=block_ms)
        requests = []
        for stream, entries in reply or []:
            queue = by_stream[stream.decode() if isinstance(stream, bytes) else stream]
            for entry_id, fields in entries:
                if isinstance(fields, list):  # a raw reply: [field, value, ...]
                    fields = dict(zip(fields[::2], fields[1::2], strict=True))
                positions[queue] = entry_id
                requests.append(control_message(queue, fields))
        return requests

    async def newest_control_ids(self, queues: Iterable[str]) -> dict[str, bytes]:
        """The newest entry id of each queue's cancellation requests, to read from."""
        async with self._redis.pipeline(transaction=False) as pipe:
            names = list(queues)
            for queue in names:
                pipe.xrevrange(self._keys.queue(queue).control, count=1)
            replies = await pipe.execute()
        return {q: (r[0][0] if r else b"0-0") for q, r in zip(names, replies, strict=True)}
