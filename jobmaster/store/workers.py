"""Live workers: each publishes its state (a heartbeat) that expires unless renewed."""

from __future__ import annotations

from typing import Any

from jobmaster.codec import pack, unpack
from jobmaster.models import WorkerInfo
from jobmaster.store.connection import StoreConnection


class WorkerCommands:
    """Workers' heartbeats, as the worker writes them and a client reads them."""

    def __init__(self, conn: StoreConnection) -> None:
        self._conn = conn
        self.redis = conn.redis
        self.keys = conn.keys

    async def heartbeat(self, info: WorkerInfo, ttl_ms: int) -> None:
        """Publish a worker's state; it disappears ``ttl_ms`` after the last heartbeat."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.keys.worker(info.id), pack(info.model_dump()), px=ttl_ms)
            pipe.zadd(self.keys.workers, {info.id: int(info.last_seen * 1000)})
            await pipe.execute()

    async def remove_worker(self, worker_id: str) -> None:
        """Forget a worker that stopped."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(self.keys.worker(worker_id))
            pipe.zrem(self.keys.workers, worker_id)
            await pipe.execute()

    async def workers(self) -> list[WorkerInfo]:
        """Live workers (those whose heartbeat has not expired); forgets dead ones."""
        ids: Any = await self.redis.zrange(self.keys.workers, 0, -1)
        if not ids:
            return []
        keys = [self.keys.worker(i.decode()) for i in ids]
        raws: Any
        if self._conn.cluster:  # the workers' keys lie in many slots: a GET each, pipelined
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.get(key)
                raws = await pipe.execute()
        else:
            raws = await self.redis.mget(keys)
        dead = [i for i, raw in zip(ids, raws, strict=True) if raw is None]
        if dead:
            await self.redis.zrem(self.keys.workers, *dead)
        return [WorkerInfo.model_validate(unpack(raw)) for raw in raws if raw is not None]
