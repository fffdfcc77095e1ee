"""Enqueueing through redis-py's client, where the store has no multiplexed connection (a
client of one's own, ``rediss://``, ``rediss+cluster://``): the batches' script calls in one
pipeline on one server; on Redis Cluster, whose pipelines take no scripts, one call per
batch (or, waiting for replicas, one pipeline to the queue's master)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from jobmaster.scripts import Script
from jobmaster.store.connection import QueueKeyLists, StoreConnection
from jobmaster.store.enqueueing import created_flags, enqueue_call
from jobmaster.store.replication import scripts_then_wait
from jobmaster.store.replies import flags_reply
from jobmaster.store.types import NewJob


class PipelinedEnqueue:
    """The enqueue script's calls over redis-py.

    Args:
        conn: the store's connection.
        script: the enqueue script.
        known_queues: the queues already in the list of queues (shared with the caller,
            added to here).
    """

    def __init__(self, conn: StoreConnection, script: Script, known_queues: set[str]) -> None:
        self._conn = conn
        self._redis = conn.redis
        self._keys = conn.keys
        self._events_maxlen = conn.events_maxlen
        self._enqueue = script
        self._replication = conn.replication
        self._known_queues = known_queues

    async def enqueue(
        self, queue: str, lists: QueueKeyLists, batches: list[Sequence[NewJob]]
    ) -> list[bool]:
        script, replication = self._enqueue, self._replication
        if len(batches) == 1 and queue in self._known_queues and replication is None:
            return flags_reply(await script(*enqueue_call(lists, batches[0], self._events_maxlen)))
        if self._conn.cluster:
            return await self._on_cluster(queue, lists, batches)
        async with self._redis.pipeline(transaction=False) as pipe:
            if queue not in self._known_queues:
                pipe.sadd(self._keys.queues, queue)
            sizes = [] if queue in self._known_queues else [0]  # SADD's reply first
            for batch in batches:
                await script(*enqueue_call(lists, batch, self._events_maxlen), client=pipe)
                sizes.append(len(batch))
            if replication is not None:  # on the connection of the writes
                pipe.execute_command(*replication.command())
            replies = await pipe.execute(raise_on_error=False)
        acked = replies.pop() if replication is not None else None
        created = created_flags(sizes, replies)
        self._known_queues.add(queue)
        if replication is not None and batches:
            replication.check(acked, "enqueue", created)
        return created

    async def _on_cluster(
        self, queue: str, lists: QueueKeyLists, batches: list[Sequence[NewJob]]
    ) -> list[bool]:
        """:meth:`enqueue` through redis-py's cluster client, whose pipelines
        take no scripts: one call per batch, or (waiting for replicas) the calls and the
        ``WAIT`` in one pipeline to the queue's master."""
        if queue not in self._known_queues:
            await self._redis.sadd(self._keys.queues, queue)  # type: ignore[misc]
        calls = [enqueue_call(lists, batch, self._events_maxlen) for batch in batches]
        replication, acked = self._replication, None
        replies: list[Any] = []
        if replication is not None and calls:
            redis = cast(RedisCluster, self._redis)
            replies, acked = await scripts_then_wait(redis, self._enqueue, calls, replication)
        else:
            for call in calls:
                try:
                    replies.append(await self._enqueue(*call))
                except ResponseError as exc:
                    replies.append(exc)
        self._known_queues.add(queue)
        created = created_flags([len(b) for b in batches], replies)
        if replication is not None and calls:
            replication.check(acked, "enqueue", created)
        return created
