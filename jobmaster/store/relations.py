"""Relations between jobs in Redis (relations.lua): jobs created with their dependencies and
groups, the outbox (relay) of each queue, and the reads of dependencies and groups."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jobmaster.codec import unpack
from jobmaster.store.connection import StoreConnection


class RelationCommands:
    """Each change is one call of ``relate.lua`` on one queue; what another queue must learn
    is written in the queue's outbox and delivered by :mod:`jobmaster.relay`."""

    def __init__(self, conn: StoreConnection) -> None:
        self._conn = conn
        self._redis = conn.redis
        self._keys = conn.keys
        self._events_maxlen = conn.events_maxlen
        self._relate = conn.script("relate")
        self._claim = conn.script("relay_claim")
        self._ack = conn.script("relay_ack")

    async def relate(self, queue: str, message: bytes) -> tuple[list[bool], list[str]]:
        """Apply one message (msgpack, see relate.lua) to ``queue``: per job it creates, True
        when created (False: its id existed), and the ids of the messages it wrote in the
        queue's outbox."""
        created, sent = await self._relate(
            (self._keys.queue(queue).status,), (message, self._events_maxlen)
        )
        return [bool(c) for c in created], [_text(s) for s in sent]

    async def claim(
        self, queue: str, *, limit: int, lease_ms: int, retention_ms: int, ids: Sequence[str] = ()
    ) -> list[tuple[str, bytes]]:
        """Messages of ``queue``'s outbox to deliver (those due, or ``ids``), each moved a
        lease ahead; groups ended more than the retention ago are forgotten."""
        k = self._keys.queue(queue)
        reply = await self._claim(
            (
                k.relay, k.relay_due, k.groups, k.group_state, k.group_members, k.group_index,
                k.group_ended,
            ),
            (limit, lease_ms, retention_ms, *ids),
        )  # fmt: skip
        return [(_text(reply[i]), bytes(reply[i + 1])) for i in range(0, len(reply), 2)]

    async def acknowledge(self, queue: str, ids: Sequence[str]) -> None:
        """Messages of ``queue``'s outbox were delivered: forget them."""
        if ids:
            k = self._keys.queue(queue)
            await self._ack((k.relay, k.relay_due), list(ids))

    async def pending(self, queue: str) -> int:
        """Messages of ``queue``'s outbox not delivered yet."""
        return int(await self._redis.zcard(self._keys.queue(queue).relay_due))

    async def existing(self, queue: str, ids: Sequence[str]) -> list[bool]:
        """Whether each job id exists in ``queue``."""
        if not ids:
            return []
        status = self._keys.queue(queue).status
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hexists(status, job_id)
            return [bool(found) for found in await pipe.execute()]

    async def statuses(self, queue: str, job_ids: Sequence[str]) -> list[bytes | None]:
        """The status record of each job (None: it does not exist)."""
        if not job_ids:
            return []
        raws: Any = await self._redis.hmget(  # type: ignore[misc]
            self._keys.queue(queue).status, list(job_ids)
        )
        return [bytes(raw) if raw is not None else None for raw in raws]

    async def results(self, queue: str, job_ids: Sequence[str]) -> list[bytes | None]:
        """The result of each job (msgpack; None: it has none)."""
        if not job_ids:
            return []
        raws: Any = await self._redis.hmget(  # type: ignore[misc]
            self._keys.queue(queue).results, list(job_ids)
        )
        return [bytes(raw) if raw is not None else None for raw in raws]

    async def member_ends(self, queue: str, group_id: str, indexes: Sequence[int]) -> list[int]:
        """The seq of the news of each member's last end, as its group counted it (0: none)."""
        if not indexes:
            return []
        raws: Any = await self._redis.hmget(  # type: ignore[misc]
            self._keys.queue(queue).group_members, [f"{group_id}:{i}" for i in indexes]
        )
        return [int(_text(raw).rpartition(":")[2]) if raw else 0 for raw in raws]

    async def waits(self, queue: str, job_ids: Sequence[str]) -> list[list[Any] | None]:
        """The dependencies of each job ([queue, id, mode, last state, seq, kind] each), or
        None for a job with none."""
        if not job_ids:
            return []
        raws: Any = await self._redis.hmget(  # type: ignore[misc]
            self._keys.queue(queue).waits, list(job_ids)
        )
        return [unpack(raw) if raw else None for raw in raws]

    async def related(self, queue: str, job_id: str) -> dict[str, Any]:
        """The jobs that wait on a job (``d``) and its group (``g``), as stored."""
        raw: Any = await self._redis.hget(self._keys.queue(queue).related, job_id)  # type: ignore[misc]
        found = unpack(raw) if raw else {}
        return found if isinstance(found, dict) else {}

    async def group(
        self, queue: str, group_id: str
    ) -> tuple[dict[str, Any], list[list[str]], dict[str, Any]] | None:
        """A group's definition, members ([queue, id] each) and tally, or None."""
        k = self._keys.queue(queue)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hmget(k.groups, [group_id, f"{group_id}:m"])
            pipe.hget(k.group_state, group_id)
            (definition, members), tally = await pipe.execute()
        if definition is None or members is None or tally is None:
            return None
        return unpack(definition), unpack(members), unpack(tally)

    async def group_ids(self, queue: str, limit: int = 100) -> list[tuple[str, int]]:
        """The newest groups kept in ``queue``: (id, created ms)."""
        reply = await self._redis.zrevrange(
            self._keys.queue(queue).group_index, 0, limit - 1, withscores=True
        )
        return [(_text(gid), int(ms)) for gid, ms in reply]

    async def find_group(self, queues: Sequence[str], group_id: str) -> str | None:
        """The queue that keeps group ``group_id``, among ``queues``."""
        found = await self._conn.holding(list(queues), lambda k: k.groups, group_id)
        return found[0] if found else None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
