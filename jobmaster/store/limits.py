"""Flow control in Redis: paused queues, and the jobs with unique keys or limits (their
enqueue, and what their limits hold now). The claim and the ends of attempts apply the
limits themselves (``lua/limits.lua``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jobmaster.store.connection import GROUP, StoreConnection
from jobmaster.store.types import LimitState, NewJob


class LimitCommands:
    """Pause and resume queues; enqueue jobs with controls; read the limits' state."""

    def __init__(self, conn: StoreConnection) -> None:
        self._conn = conn
        self._redis = conn.redis
        self._keys = conn.keys
        self._pause = conn.script("pause_queue")
        self._enqueue = conn.script("enqueue_controlled")
        self._fast = conn.fast
        self._known_queues: set[str] = set()

    async def pause_queue(self, queue: str, pause: bool) -> bool:
        """Pause (or resume) a queue; whether its state changed."""
        k = self._keys.queue(queue)
        changed = await self._pause([k.paused, k.control], ["pause" if pause else "resume"])
        return bool(changed)

    async def paused_queues(self, queues: Sequence[str]) -> list[str]:
        """Which of these queues are paused."""
        if not queues:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.exists(self._keys.queue(queue).paused)
            found = await pipe.execute()
        return [q for q, f in zip(queues, found, strict=True) if f]

    async def enqueue(
        self, queue: str, jobs: Sequence[NewJob], lines: Sequence[str]
    ) -> list[bool | str]:
        """Create jobs with controls (``lines``, one per job: see flow_control.py); for each,
        True when created, False when its id existed, or the id of the live job that holds
        its unique key (nothing was written)."""
        k = self._keys.queue(queue)
        keys = [
            k.jobs, k.status, k.index("queued"), k.index("scheduled"), k.events, k.timers,
            k.limits, k.unique, k.limit_keys, *k.streams,
        ]  # fmt: skip
        if queue not in self._known_queues:  # listed once per store, as JobCommands does
            if self._fast is not None:
                await self._fast.execute("SADD", self._keys.queues, queue)
            else:
                await self._redis.sadd(self._keys.queues, queue)  # type: ignore[misc]
        out: list[bool | str] = []
        for first in range(0, len(jobs), 100):
            args: list[Any] = [GROUP, self._conn.events_maxlen]
            for job, line in zip(
                jobs[first : first + 100], lines[first : first + 100], strict=True
            ):
                args += [job.id, job.record, job.band, job.delay_ms, line]
            for flag in await self._enqueue(keys, args):
                out.append(flag.decode() if isinstance(flag, bytes) else bool(flag))
        self._known_queues.add(queue)
        return out

    async def limit_states(self, queue: str) -> list[LimitState]:
        """Every limit key of a queue's jobs: its limits, running and waiting counts."""
        k = self._keys.queue(queue)
        raw: Any = await self._redis.hgetall(k.limit_keys)  # type: ignore[misc]
        names = sorted(bytes(n).decode() for n in raw)
        if not names:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.scard(k.limit_active(name))
                pipe.llen(k.limit_wait(name))
            counts = await pipe.execute()
        states = []
        for i, name in enumerate(names):
            max_running, _, rate = raw[name.encode()].decode().partition("\t")
            states.append(
                LimitState(
                    key=name,
                    max_running=int(max_running) if max_running else None,
                    rate=rate or None,
                    running=int(counts[2 * i]),
                    waiting=int(counts[2 * i + 1]),
                )
            )
        return states

    async def held_for_resources(self, queue: str, limit: int = 1000) -> list[tuple[str, str]]:
        """The jobs of a queue held back for resources (the oldest ``limit``): (id, what it
        needs, as the scripts read it)."""
        k = self._keys.queue(queue)
        ids = [bytes(i).decode() for i in await self._redis.lrange(k.resource_wait, 0, limit - 1)]  # type: ignore[misc]
        if not ids:
            return []
        lines: Any = await self._redis.hmget(k.limits, ids)  # type: ignore[misc]
        return [
            (job_id, bytes(line or b"").decode().rpartition("\t")[2])
            for job_id, line in zip(ids, lines, strict=True)
        ]
