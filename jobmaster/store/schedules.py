"""Schedules: their records, due times, firing and the scheduler lease."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jobmaster.store.connection import GROUP, StoreConnection
from jobmaster.store.replies import (
    Firing,
    ScheduleSave,
    fire_schedules_reply,
    save_schedule_reply,
    scheduler_lease_reply,
)
from jobmaster.store.types import ScheduleFiring, ScheduleRecord, SchedulerLease


class ScheduleCommands:
    """Schedule records and the scripts that fire their ticks."""

    def __init__(self, conn: StoreConnection) -> None:
        self._conn = conn
        self.redis = conn.redis
        self.keys = conn.keys
        self.events_maxlen = conn.events_maxlen
        self._k = conn.lists
        self._save_schedule = conn.script("save_schedule")
        self._fire_schedules = conn.script("fire_schedules")
        self._scheduler_lease = conn.script("scheduler_lease")

    async def save_schedule(
        self,
        queue: str,
        name: str,
        *,
        create: bool,
        definition: bytes = b"",
        revision: int = -1,
        paused: bool = False,
        due_ms: int = -1,
    ) -> ScheduleSave:
        """Create (``create``) or change a schedule; says what was done (nothing, unless
        ``Saved.SAVED``) and the schedule's revision. An empty definition keeps the stored
        one, ``due_ms`` -1 the stored next due time; a ``revision`` other than -1 must be
        the stored one."""
        argv = (name, "create" if create else "update", definition, revision, int(paused), due_ms)
        if self._conn.cluster:  # three slots, and a cluster's pipelines take no scripts
            await self.redis.sadd(self.keys.schedule_queues, queue)  # type: ignore[misc]
            await self.redis.sadd(self.keys.queues, queue)  # type: ignore[misc]
            reply = await self._save_schedule(self._k(queue).save_schedule, argv)
            return save_schedule_reply(reply)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.sadd(self.keys.schedule_queues, queue)
            pipe.sadd(self.keys.queues, queue)
            await self._save_schedule(self._k(queue).save_schedule, argv, client=pipe)
            *_, reply = await pipe.execute()
        return save_schedule_reply(reply)

    async def schedule_queues(self) -> list[str]:
        """The queues that ever had a schedule, sorted."""
        names: Any = await self.redis.smembers(self.keys.schedule_queues)  # type: ignore[misc]
        return sorted(n.decode() for n in names)

    async def locate_schedule(self, name: str) -> list[str]:
        """The queues holding a schedule with this name (names are meant to be unique)."""
        queues = await self.schedule_queues()
        return await self._conn.holding(queues, lambda k: k.schedule_state, name)

    async def schedules(
        self, queue: str, names: Sequence[str] | None = None
    ) -> list[ScheduleRecord]:
        """A queue's schedules (all, or those named), by name."""
        k = self.keys.queue(queue)
        async with self.redis.pipeline(transaction=False) as pipe:
            if names is None:
                pipe.hgetall(k.schedules)
                pipe.hgetall(k.schedule_state)
                definitions, states = await pipe.execute()
            else:
                if not names:
                    return []
                pipe.hmget(k.schedules, list(names))
                pipe.hmget(k.schedule_state, list(names))
                defs, sts = await pipe.execute()
                definitions = {n.encode(): d for n, d in zip(names, defs, strict=True)}
                states = {n.encode(): s for n, s in zip(names, sts, strict=True)}
        return [
            ScheduleRecord(queue, name.decode(), definition, states[name])
            for name, definition in sorted(definitions.items())
            if definition is not None and states.get(name) is not None
        ]

    async def due_schedules(self, queue: str, until_ms: int, limit: int) -> list[ScheduleRecord]:
        """Schedules of a queue due at ``until_ms`` (server clock), soonest first."""
        names: Any = await self.redis.zrangebyscore(
            self.keys.queue(queue).schedule_due, "-inf", until_ms, start=0, num=limit
        )
        return await self.schedules(queue, [n.decode() for n in names])

    async def delete_schedule(self, queue: str, name: str) -> bool:
        """Delete a schedule; False when it did not exist."""
        k = self.keys.queue(queue)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(k.schedule_state, name)
            pipe.hdel(k.schedules, name)
            pipe.zrem(k.schedule_due, name)
            deleted, *_ = await pipe.execute()
        return bool(deleted)

    async def fire_schedules(
        self, queue: str, firings: Sequence[ScheduleFiring]
    ) -> tuple[list[Firing], int]:
        """Create tick jobs and advance schedules (compare-and-set, see fire_schedules.lua).

        Returns what was done and how many jobs were created per firing, and the ms until
        the next due schedule.
        """
        argv: list[Any] = [GROUP, self.events_maxlen]
        for f in firings:
            argv += (f.name, f.revision, f.due_ms, f.next_due_ms, f.band, f.controls, len(f.jobs))
            for job in f.jobs:
                argv += (job.id, job.record, job.tick_ms)
        reply = await self._fire_schedules(self._k(queue).fire_schedules, argv)
        return fire_schedules_reply(reply)

    async def scheduler_lease(
        self, queue: str, holder: str, lease_ms: int, *, release: bool = False
    ) -> SchedulerLease:
        """Take or renew (or release) a queue's scheduler lease; says what is due."""
        reply = await self._scheduler_lease(
            self._k(queue).scheduler_lease, (holder, lease_ms, "release" if release else "hold")
        )
        return scheduler_lease_reply(reply)

    async def scheduler_leader(self, queue: str) -> str | None:
        """The id of the worker whose scheduler leads a queue, if any."""
        holder: Any = await self.redis.get(self.keys.queue(queue).scheduler_lease)
        return holder.decode() if holder is not None else None

    async def wait_for_schedule_changes(self, newest: Mapping[str, bytes], timeout_ms: int) -> bool:
        """Block until a schedule of one of the queues is saved after ``newest``."""
        streams: dict[Any, Any] = {
            self.keys.queue(queue).schedule_wake: last for queue, last in newest.items()
        }
        reader = self._conn.reader("schedules")
        return bool(await reader.xread(streams, count=1, block_ms=max(1, timeout_ms)))
