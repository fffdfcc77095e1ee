"""Lease renewal on a synchronous connection of its own, for the worker's lease keeper thread:
nothing a handler does to the event loop (blocking it, starving it) can stop it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from jobmaster.keys import Keys
from jobmaster.scripts import source
from jobmaster.store.base import _QueueKeyLists
from jobmaster.store.types import Lease


def renew_arguments(leases: Sequence[Lease], lease_ms: int) -> list[Any]:
    """renew.lua's ARGV for ``leases``."""
    argv: list[Any] = [lease_ms]
    for lease in leases:
        argv += (lease.job_id, lease.token)
    return argv


def renewed(leases: Sequence[Lease], reply: Any) -> tuple[list[Lease], list[Lease]]:
    """renew.lua's reply as (leases no longer held, leases whose job's cancellation was
    requested)."""
    lost, cancel = reply
    return [leases[i - 1] for i in lost], [leases[i - 1] for i in cancel]


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
        """Extend leases (even when Redis is full), as :meth:`jobmaster.store.Store.renew`."""
        if not leases:
            return [], []
        keys = self._key_lists.get(queue)
        if keys is None:
            keys = self._key_lists[queue] = _QueueKeyLists(self._keys.queue(queue)).renew
        reply = self._script(keys=list(keys), args=renew_arguments(leases, lease_ms))
        return renewed(leases, reply)

    def close(self) -> None:
        self._client.close()
