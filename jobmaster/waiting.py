"""Waiting for jobs to finish, without polling: one blocking reader of the events streams
per store, shared by every waiter in the process."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import Any

from jobmaster.errors import JobNotFound, ResultTimeout
from jobmaster.models import JobState
from jobmaster.store import Store
from jobmaster.store.stream_reads import StreamReader

RECHECK_SECONDS = 5.0
"""A waiter re-reads its job's state this often in case events were trimmed unread."""
BLOCK_MS = 5000


class JobWaiter:
    """Resolves waiters as the events streams report their jobs finished.

    One reader task per queue with waiters; it stops when the queue has none left.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._positions: dict[str, bytes] = {}
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._connections: dict[str, StreamReader] = {}
        """Each queue's blocking reads, on connections of their own (a cancelled read ends
        at once there, and leaves no connection of a client library behind)."""
        self._waiters: defaultdict[tuple[str, str], list[asyncio.Future[JobState]]] = defaultdict(
            list
        )

    async def wait(self, queue: str, job_id: str, timeout: float | None) -> JobState:
        """The job's final state, once it has one; :class:`ResultTimeout` after ``timeout``.

        The waiter is registered before the job's state is read, and a new reader starts
        from a position read together with that state: no final event can slip between.
        A job that has already finished starts no reader.
        """
        future: asyncio.Future[JobState] = asyncio.get_running_loop().create_future()
        key = (queue, job_id)
        self._waiters[key].append(future)
        try:
            position, state = await self._store.inspection.position_and_state(queue, job_id)
            if state is None:
                raise JobNotFound(f"no job {job_id!r} in queue {queue!r}")
            if state.is_final:
                return state
            reader = self._readers.get(queue)
            if reader is None or reader.done():
                self._positions[queue] = position
                self._readers[queue] = asyncio.get_running_loop().create_task(self._read(queue))
            return await self._await(queue, job_id, future, timeout)
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None:
                with contextlib.suppress(ValueError):
                    waiters.remove(future)
                if not waiters:
                    del self._waiters[key]

    async def _await(
        self, queue: str, job_id: str, future: asyncio.Future[JobState], timeout: float | None
    ) -> JobState:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            remaining = RECHECK_SECONDS if deadline is None else deadline - loop.time()
            if remaining > 0:
                try:
                    async with asyncio.timeout(min(remaining, RECHECK_SECONDS)):
                        return await asyncio.shield(future)
                except TimeoutError:
                    pass
            state = await self._store.inspection.state(queue, job_id)
            if state is None:
                raise JobNotFound(f"no job {job_id!r} in queue {queue!r}")
            if state.is_final:
                return state
            if deadline is not None and loop.time() >= deadline:
                raise ResultTimeout(
                    f"job {job_id} did not finish within {timeout:g}s (it is {state.value})"
                )

    def _has_waiters(self, queue: str) -> bool:
        return any(q == queue for q, _ in self._waiters)

    async def _read(self, queue: str) -> None:
        delay = 0.05
        positions = {queue: self._positions[queue]}
        inspection = self._store.inspection
        reader = self._connections.get(queue)
        if reader is None:
            reader = self._connections[queue] = inspection.new_reader()
        while self._has_waiters(queue):
            try:
                events, _ = await inspection.read_event_batch(positions, BLOCK_MS, reader=reader)
                delay = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped connection: waiters re-check on their own
                if not self._has_waiters(queue):
                    break
                _log().warning("events read failed; retrying", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            for event in events:
                if not event.state.is_final:
                    continue
                for future in self._waiters.get((event.queue, event.job_id), ()):
                    if not future.done():
                        future.set_result(event.state)

    async def close(self) -> None:
        readers = list(self._readers.values())
        self._readers.clear()
        for reader in readers:
            reader.cancel()
        if readers:  # bounded: a cancellation swallowed by the client must not hang close
            await asyncio.wait(readers, timeout=1.0)
        connections = list(self._connections.values())
        self._connections.clear()
        for connection in connections:
            await connection.close()


def _log() -> Any:
    import structlog  # on this error path only: producers import this module

    return structlog.get_logger("jobmaster.waiting")
