"""The reclaimer: takes back the jobs of workers that died or stalled, as their leases
expire, and does the queues' housekeeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from jobmaster.ops.middleware import Hooks
from jobmaster.store import Store
from jobmaster.worker.loops import pause, with_retries

RECLAIM_MARGIN_MS = 5
"""Wake a little after the earliest lease expiry rather than just before it."""
HOUSEKEEPING_INTERVAL = 60.0
"""Seconds between retention pruning of idle queues and removal of dead consumers."""
CONSUMER_IDLE_LEASES = 10
"""A consumer idle this many leases with nothing pending belongs to a dead worker."""


class Reclaimer:
    """Reclaims expired leases until the worker closes.

    Sleeps until the earliest lease of the queues expires (at most one lease length), so a
    killed worker's jobs run again about one lease after its last renewal.

    Args:
        store: where leases are reclaimed.
        queues: the queues to watch.
        max_lost: attempts a job may lose before it fails (see claim.lua).
        lease_ms: the lease length.
        retention_ms: how long finished jobs are kept.
        log: the worker's logger.
        closed: set when the worker closes.
        hooks: the middleware told of the attempts taken back (``on_lost``), if any.
    """

    def __init__(
        self,
        store: Store,
        queues: Sequence[str],
        *,
        max_lost: int,
        lease_ms: int,
        retention_ms: int,
        log: Any,
        closed: asyncio.Event,
        hooks: Hooks | None = None,
    ) -> None:
        self._store = store
        self._hooks = hooks
        self._queues = list(queues)
        self._max_lost = max_lost
        self._lease_ms = lease_ms
        self._retention_ms = retention_ms
        self._log = log
        self._closed = closed
        self._wait_ms = 0

    async def run(self) -> None:
        housekeeping = time.monotonic()
        while not self._closed.is_set():
            await with_retries("reclaim", self.reclaim, log=self._log, closed=self._closed)
            if time.monotonic() >= housekeeping:
                housekeeping = time.monotonic() + HOUSEKEEPING_INTERVAL
                await with_retries(
                    "housekeeping",
                    self.housekeeping,
                    log=self._log,
                    closed=self._closed,
                    attempts=1,
                )
            await pause(self._closed, self._wait_ms / 1000)

    async def reclaim(self) -> None:
        """One round over the queues; notes when the next lease expires."""
        self._wait_ms = self._lease_ms
        for queue in self._queues:
            result = await self._store.leases.reclaim(queue, self._max_lost)
            if self._hooks is not None and self._hooks.wants_lost:
                lost = [*result.requeued, *result.failed]
                if lost:
                    self._hooks.on_lost(queue, lost, await self._store.jobs.names(queue, lost))
            if result.requeued or result.failed:
                self._log.warning(
                    "took back jobs whose lease expired",
                    queue=queue,
                    requeued=len(result.requeued),
                    failed=result.failed,
                )
            if result.next_expiry_ms >= 0:
                self._wait_ms = min(self._wait_ms, result.next_expiry_ms + RECLAIM_MARGIN_MS)

    async def housekeeping(self) -> None:
        """Retention for queues that see no completions, and dead workers' consumer names."""
        for queue in self._queues:
            await self._store.jobs.prune(queue, self._retention_ms)
            await self._store.jobs.forget_idle_consumers(
                queue, CONSUMER_IDLE_LEASES * self._lease_ms
            )
