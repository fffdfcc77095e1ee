"""Delivery of the relay: the messages a queue's scripts wrote for other queues (news of a
job's end for the jobs that wait on it, a member's end for its group, jobs to create, a
request to stop a group's members).

A message stays in its queue's outbox until it was applied to its target and acknowledged:
a deliverer that dies half-way (after applying, before acknowledging) leaves it there, and
it is delivered again a lease later. Applying a message twice changes nothing more than
applying it once (see relations.lua), so each is applied in effect once. Producers deliver
what their own enqueue wrote at once; workers deliver the outboxes of the queues they serve.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgpack

if TYPE_CHECKING:
    from jobmaster.store import Store

RELAY_LEASE_MS = 15_000
"""How long a message taken for delivery waits before another deliverer takes it."""

RELAY_BATCH = 100
"""Messages taken from one outbox per call."""


def pack_message(message: dict[str, Any]) -> bytes:
    """A message for relate.lua: msgpack without the bin type (Redis's Lua msgpack reads
    bytes, a job's record, only as text of those bytes)."""
    return msgpack.packb(message, use_bin_type=False)  # type: ignore[no-any-return]


class Relay:
    """Delivers outboxes through one store."""

    def __init__(self, store: Store, retention_ms: int, lease_ms: int = RELAY_LEASE_MS) -> None:
        self._store = store
        self._retention_ms = retention_ms
        self._lease_ms = lease_ms

    async def deliver(self, queue: str, ids: Sequence[str] = ()) -> int:
        """Deliver the messages ``ids`` of ``queue``'s outbox (none: those due), then what
        their application wrote in other outboxes, until nothing is left of them. Returns how
        many messages were delivered."""
        delivered = 0
        work: list[tuple[str, Sequence[str]]] = [(queue, ids)]
        while work:
            source, named = work.pop()
            while True:
                messages = await self._store.relations.claim(
                    source,
                    limit=RELAY_BATCH,
                    lease_ms=self._lease_ms,
                    retention_ms=self._retention_ms,
                    ids=named,
                )
                if not messages:
                    break
                done = []
                for message_id, raw in messages:
                    target, more = await self._apply(raw)
                    if more:
                        work.append((target, more))
                    done.append(message_id)
                await self._store.relations.acknowledge(source, done)
                delivered += len(done)
                if named or len(messages) < RELAY_BATCH:
                    break
        return delivered

    async def _apply(self, raw: bytes) -> tuple[str, list[str]]:
        """Apply one message to its target queue: the target, and the ids of the messages
        that wrote in the target's outbox."""
        # the records of jobs to create are bytes the scripts packed as text: read loosely
        message: dict[str, Any] = msgpack.unpackb(
            raw, raw=False, strict_map_key=False, unicode_errors="surrogateescape"
        )
        target = str(message["t"])
        if message.get("k") == "cancel":  # a group's members are stopped as a user would
            reason = str(message.get("r") or "cancelled")
            for job_id in message.get("ids") or []:
                await self._store.control.cancel(target, str(job_id), reason)
            return target, []
        _, sent = await self._store.relations.relate(target, raw)
        return target, sent
