"""Remote control: a worker reads the commands sent to it (``registry.pause_worker`` and its
siblings) from its own command stream with a blocking read, applies each, lists itself again
with its new state, and acknowledges it.

Pause stops the fetcher claiming (it waits on the slot event, which resume sets; no polling)
and keeps what runs; resume undoes it; drain stops taking jobs and lets the worker exit 0 once
what runs has ended (within its grace); stop does what SIGTERM does (a second stop, as a
second SIGTERM, hands back what runs at once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from jobmaster.models import WorkerState
from jobmaster.store import Store
from jobmaster.worker.loops import BLOCK_MS, with_retries
from jobmaster.worker.running import RunningAttempts

COMMANDS = ("pause", "resume", "drain", "stop")
"""The commands a worker obeys."""


class RemoteControl:
    """The worker's state as commands set it, and the loop that reads them.

    Args:
        store: where the commands are read and acknowledged.
        running: the worker's running attempts (their slot event wakes the fetcher).
        worker_id: whose commands to read.
        drain: stops taking jobs; the worker exits once what runs has ended.
        stop: what SIGTERM does.
        beat: lists the worker now (its new state shows before the acknowledgement).
        log: the worker's logger.
        closed: set when the worker closes.
    """

    def __init__(
        self,
        store: Store,
        running: RunningAttempts,
        *,
        worker_id: str,
        drain: Callable[[], None],
        stop: Callable[[], None],
        beat: Callable[[], Awaitable[None]],
        log: Any,
        closed: asyncio.Event,
    ) -> None:
        self._store = store
        self._running = running
        self._worker_id = worker_id
        self._drain = drain
        self._stop = stop
        self._beat = beat
        self._log = log
        self._closed = closed
        self._position = b"0-0"  # the stream is the worker's own: it has read nothing yet
        self.state: WorkerState = "running"
        self.claiming = asyncio.Lock()
        """Held by the fetcher while it claims: a pause is acknowledged after the claim in
        flight, so that nothing is claimed once the sender hears of it."""
        self.pausing = asyncio.Event()
        """Set by a pause: a claim waiting for work (behind a blocking read) ends its wait."""

    @property
    def paused(self) -> bool:
        return self.state == "paused"

    async def run(self) -> None:
        while not self._closed.is_set():
            await with_retries("remote control", self.read, log=self._log, closed=self._closed)

    async def read(self) -> None:
        """Read the next commands (blocking) and apply them."""
        commands = await self._store.fleet.read_worker_commands(
            self._worker_id, self._position, BLOCK_MS
        )
        for entry_id, command, ack_id in commands:
            await self.apply(command)
            self._position = entry_id
            if ack_id:
                await self._store.fleet.acknowledge_worker_command(ack_id, self.state)

    async def apply(self, command: str) -> None:
        """Apply one command, then list the worker with its new state."""
        if command not in COMMANDS:
            self._log.warning("unknown remote command ignored", command=command)
            return
        self._log.info("remote command received", command=command, state=self.state)
        if command == "pause" and self.state == "running":
            self.state = "paused"
            self.pausing.set()
            async with self.claiming:  # the claim in flight, if any, is over
                pass
        elif command == "resume" and self.state == "paused":
            self.state = "running"
            self._running.slot_freed.set()  # wakes the fetcher
        elif command in ("drain", "stop"):
            self.state = "draining"
            (self._drain if command == "drain" else self._stop)()
        await with_retries("heartbeat", self._beat, log=self._log, closed=self._closed, attempts=1)
