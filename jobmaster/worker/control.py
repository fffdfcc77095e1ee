"""The control listener: cancels running attempts whose job's cancellation was requested,
and wakes the fetcher when a paused queue is resumed, reading the queues' control streams."""

from __future__ import annotations

import asyncio
from typing import Any

from jobmaster.store import Store
from jobmaster.worker.loops import BLOCK_MS, with_retries
from jobmaster.worker.running import RunningAttempts


class ControlListener:
    """Reads cancellation requests until the worker closes (a blocking read).

    Args:
        store: where the control streams are read.
        running: the attempts a request may cancel.
        positions: where to read from, by queue: taken before the first claim, so that a
            cancellation requested for a job this worker claims comes after it.
        log: the worker's logger.
        closed: set when the worker closes.
        resumed: set when one of the queues is resumed.
    """

    def __init__(
        self,
        store: Store,
        running: RunningAttempts,
        positions: dict[str, bytes],
        *,
        log: Any,
        closed: asyncio.Event,
        resumed: asyncio.Event | None = None,
    ) -> None:
        self._store = store
        self._running = running
        self._positions = positions
        self._log = log
        self._closed = closed
        self._resumed = resumed

    async def run(self) -> None:
        while not self._closed.is_set():
            await with_retries("control", self.read, log=self._log, closed=self._closed)

    async def read(self) -> None:
        """Read the next requests (blocking) and act on them."""
        for message in await self._store.control.read_control(self._positions, BLOCK_MS):
            if message.command == "cancel":
                self._running.cancel(message.queue, message.job_id, message.token)
            elif message.command == "resume" and self._resumed is not None:
                self._log.info("queue resumed", queue=message.queue)
                self._resumed.set()
            elif message.command == "pause":
                self._log.info("queue paused", queue=message.queue)
