"""Attempts and their leases: renewal, hand-back, reclaim of expired leases, an overrun's
record, and the log lines and progress of running attempts. :class:`LeaseRenewer` renews on
a synchronous connection of its own, for the worker's lease keeper thread: nothing a handler
does to the event loop (blocking it, starving it) can stop it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from jobmaster.keys import Keys, attempt_field
from jobmaster.scripts import source
from jobmaster.store.connection import GROUP, QueueKeyLists, StoreConnection
from jobmaster.store.replies import flags_reply, reclaim_reply, renew_reply
from jobmaster.store.types import Lease, Output, Reclaim


def renew_arguments(leases: Sequence[Lease], lease_ms: int) -> list[Any]:
    """renew.lua's ARGV for ``leases``."""
    argv: list[Any] = [lease_ms]
    for lease in leases:
        argv += (lease.job_id, lease.token)
    return argv


class LeaseCommands:
    """The attempts that run: their leases, and what they write while they run."""

    def __init__(self, conn: StoreConnection) -> None:
        self._lists = conn.lists
        self._events_maxlen = conn.events_maxlen
        self._log_bytes = conn.log_bytes
        self._renew = conn.script("renew")
        self._requeue = conn.script("requeue")
        self._reclaim = conn.script("reclaim")
        self._overrun = conn.script("overrun")
        self._record_output = conn.script("record_output")

    async def renew(
        self, queue: str, leases: Sequence[Lease], lease_ms: int
    ) -> tuple[list[Lease], list[Lease]]:
        """Extend leases (even when Redis is full); returns the leases this worker no longer
        holds, and those whose job's cancellation was requested."""
        if not leases:
            return [], []
        reply = await self._renew(self._lists(queue).renew, renew_arguments(leases, lease_ms))
        return renew_reply(leases, reply)

    async def requeue(self, queue: str, leases: Sequence[Lease], reason: str) -> list[bool]:
        """Hand running jobs back to the queue at once, closing their attempts as lost."""
        argv: list[Any] = [GROUP, reason, self._events_maxlen]
        for lease in leases:
            argv += (lease.job_id, lease.token)
        return flags_reply(await self._requeue(self._lists(queue).requeue, argv))

    async def reclaim(self, queue: str, max_lost: int, limit: int = 1000) -> Reclaim:
        """Take back jobs whose lease expired: requeue them, or fail them once their
        attempts were lost ``max_lost`` times."""
        reply = await self._reclaim(
            self._lists(queue).reclaim, (GROUP, max_lost, limit, self._events_maxlen)
        )
        return reclaim_reply(reply)

    async def record_overrun(self, queue: str, lease: Lease, error_type: str, message: str) -> bool:
        """Close a running attempt as timed out while its code still runs (the job keeps its
        lease until the code returns); False when the lease is no longer held."""
        recorded = await self._overrun(
            self._lists(queue).overrun, (lease.job_id, lease.token, error_type, message)
        )
        return bool(recorded)

    async def record_output(self, queue: str, outputs: Sequence[Output]) -> None:
        """Append log lines and set progress of running attempts."""
        argv: list[Any] = [self._log_bytes]
        for out in outputs:
            argv += (attempt_field(out.job_id, out.attempt), out.lines, out.progress)
        await self._record_output(self._lists(queue).record_output, argv)


class LeaseRenewer:
    """Renews leases with redis-py's synchronous client (one connection, used by one thread).

    Args:
        client: a client of its own (closed by :meth:`close`).
        namespace: the registry's key namespace.
    """

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self._client = client
        self._keys = Keys(namespace)
        self._script = client.register_script(source("renew"))
        self._key_lists: dict[str, tuple[str, ...]] = {}

    def renew(
        self, queue: str, leases: Sequence[Lease], lease_ms: int
    ) -> tuple[list[Lease], list[Lease]]:
        """Extend leases (even when Redis is full), as :meth:`LeaseCommands.renew`."""
        if not leases:
            return [], []
        keys = self._key_lists.get(queue)
        if keys is None:
            keys = self._key_lists[queue] = QueueKeyLists(self._keys.queue(queue)).renew
        reply = self._script(keys=list(keys), args=renew_arguments(leases, lease_ms))
        return renew_reply(leases, reply)

    def close(self) -> None:
        self._client.close()
