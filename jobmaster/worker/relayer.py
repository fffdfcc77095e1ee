"""The relayer: delivers the outboxes of the worker's queues (news of jobs' ends for the jobs
and groups of other queues that wait on them, see :mod:`jobmaster.relay`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from jobmaster.relay import Relay
from jobmaster.store import Store
from jobmaster.worker.loops import with_retries

RELAY_POLL_SECONDS = 0.2
"""How often each outbox is looked at: the most a job of another queue waits for news of
its dependency's end, beyond the delivery itself."""


class Relayer:
    """Delivers what is due in the outboxes of ``queues`` until the worker closes."""

    def __init__(
        self,
        store: Store,
        queues: Sequence[str],
        retention_ms: int,
        *,
        log: Any,
        closed: asyncio.Event,
    ) -> None:
        self._relay = Relay(store, retention_ms)
        self._queues = list(queues)
        self._log = log
        self._closed = closed

    async def run(self) -> None:
        while not self._closed.is_set():
            await with_retries("relay", self.deliver, log=self._log, closed=self._closed)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), RELAY_POLL_SECONDS)

    async def deliver(self) -> None:
        """Deliver what is due in every outbox of the worker's queues."""
        for queue in self._queues:
            await self._relay.deliver(queue)
