"""The promoter: moves due scheduled jobs (delays, retries) to their streams, then sleeps
until the next one is due or an earlier one is added."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from jobmaster.store import Store
from jobmaster.worker.loops import BLOCK_MS, with_retries


class Promoter:
    """Promotes due jobs until the worker closes.

    Args:
        store: where jobs are promoted.
        queues: the queues to promote in.
        log: the worker's logger.
        closed: set when the worker closes.
    """

    def __init__(
        self, store: Store, queues: Sequence[str], *, log: Any, closed: asyncio.Event
    ) -> None:
        self._store = store
        self._queues = list(queues)
        self._log = log
        self._closed = closed
        self._timers: dict[str, bytes] = {}
        self._timers_read: asyncio.Future[bool] | None = None

    @property
    def pending_read(self) -> asyncio.Future[bool] | None:
        """The blocking read of the timers streams in flight, if any (to wait for at
        shutdown)."""
        return self._timers_read

    async def run(self) -> None:
        try:
            while not self._closed.is_set():
                await with_retries(
                    "promote", self.promote_and_wait, log=self._log, closed=self._closed
                )
        finally:
            if self._timers_read is not None:
                self._timers_read.cancel()

    async def promote_and_wait(self) -> None:
        """Promote what is due in every queue, then wait for the next due time."""
        wait_ms = BLOCK_MS
        for queue in self._queues:
            promotion = await self._store.jobs.promote(queue)
            self._timers[queue] = promotion.timers_id
            if promotion.next_due_ms >= 0:
                wait_ms = min(wait_ms, promotion.next_due_ms)
        if wait_ms > 0:
            await self._wait_for_timers(wait_ms)

    async def _wait_for_timers(self, wait_ms: int) -> None:
        """Wait ``wait_ms`` or until a timers stream gets an entry newer than those seen.

        The due time is kept by the event loop, not by the server: Redis checks blocking
        timeouts only on its ``hz`` tick (100 ms by default). The blocking read stays
        pending across waits rather than being cancelled (which would drop its connection).
        """
        read = self._timers_read
        if read is None or read.done():
            self._timers_read = None
            if read is not None and not read.cancelled():
                read.result()  # a failed read raises here, once, for the caller to retry
            read = self._timers_read = asyncio.ensure_future(
                self._store.jobs.wait_for_timers(dict(self._timers), BLOCK_MS)
            )
        await asyncio.wait({read}, timeout=wait_ms / 1000)
