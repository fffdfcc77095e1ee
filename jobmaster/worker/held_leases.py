"""What the lease keeper keeps: the leases a worker holds (its running attempts, and those
that ended but whose end is not yet recorded), the connection it renews them on, and what
is done with what a renewal found."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from jobmaster.registry import Registry
from jobmaster.store import Lease, Store
from jobmaster.store.leases import LeaseRenewer
from jobmaster.transport import clients
from jobmaster.worker.completions import CompletionWriter
from jobmaster.worker.lease_keeper import LeaseKeeper, RenewFn
from jobmaster.worker.running import RunningAttempts


class HeldLeases:
    """The leases a worker holds, and what a renewal found about them.

    Args:
        running: the running attempts.
        writer: the completion writer (ended attempts keep their lease until recorded).
    """

    def __init__(self, running: RunningAttempts, writer: CompletionWriter) -> None:
        self._running = running
        self._writer = writer

    def leases(self) -> dict[str, list[Lease]]:
        """Leases to keep, by queue (called from the lease keeper's thread)."""
        leases: defaultdict[str, list[Lease]] = self._running.leases()
        self._writer.add_leases(leases)
        return leases

    def renewed(self, queue: str, lost: list[Lease], cancel: list[Lease]) -> None:
        """What a renewal found (in the event loop): cancellations the control stream may
        not have delivered, and leases that another worker took over."""
        for lease in cancel:
            self._running.cancel(queue, lease.job_id, lease.token)
        self._running.abandon(queue, lost)


def new_lease_keeper(
    registry: Registry,
    store: Store,
    held: HeldLeases,
    running: RunningAttempts,
    *,
    interval: float,
    lease: float,
    loop: asyncio.AbstractEventLoop,
    log: Any,
) -> LeaseKeeper:
    """The lease keeper, on a connection of its own where jobmaster makes its clients
    (with a client of one's own, such as fakeredis, it renews through the loop).

    Args:
        registry: its settings and clients.
        store: renews through the loop when the registry's client is one's own.
        held: the leases to keep.
        running: the running attempts (named in warnings of a blocked loop).
        interval: seconds between renewals.
        lease: the lease length in seconds.
        loop: the worker's event loop.
        log: the worker's logger.
    """
    renew: RenewFn
    if registry.uses_default_client():
        client = clients.sync_client(registry.settings.redis_url, max(interval, 1.0))
        renewer = LeaseRenewer(client, registry.settings.namespace)
        renew, close = renewer.renew, renewer.close
    else:
        close = None

        def renew(
            queue: str, leases: Sequence[Lease], lease_ms: int
        ) -> tuple[list[Lease], list[Lease]]:
            call = store.leases.renew(queue, leases, lease_ms)
            return asyncio.run_coroutine_threadsafe(call, loop).result(lease)

    return LeaseKeeper(
        renew=renew,
        leases=held.leases,
        on_renewed=held.renewed,
        running=running.job_ids,
        interval=interval,
        lease_ms=int(lease * 1000),
        loop=loop,
        log=log,
        close=close,
    )
