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

RELAY_POLL_SECONDS = (0.05, 0.5)
"""How often the outboxes are looked at: at the shortest while there was something to
deliver, backing off (doubling) to the longest while there is nothing. The longest is the
most a job of another queue waits for news of its dependency's end, beyond the delivery
itself; an idle worker costs Redis one script call per queue that often."""


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
        self._delivered = 0

    async def run(self) -> None:
        shortest, longest = RELAY_POLL_SECONDS
        pause = shortest
        while not self._closed.is_set():
            self._delivered = 0
            await with_retries("relay", self.deliver, log=self._log, closed=self._closed)
            pause = shortest if self._delivered else min(pause * 2, longest)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), pause)

    async def deliver(self) -> None:
        """Deliver what is due in every outbox of the worker's queues."""
        for queue in self._queues:
            self._delivered += await self._relay.deliver(queue)


async def deliver_outboxes(store: Store, queues: Sequence[str], retention_ms: int) -> None:
    """Deliver what is due in the outboxes of ``queues`` once (a worker that stops passes on
    the news of the jobs it ended last, which a burst worker would otherwise leave)."""
    relay = Relay(store, retention_ms)
    for queue in queues:
        await relay.deliver(queue)
