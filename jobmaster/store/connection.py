"""What every part of the store shares: the clients, the key layout, the scripts and the
KEYS list of each script per queue (:class:`StoreConnection`)."""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from jobmaster.keys import Keys, QueueKeys
from jobmaster.models import JobState
from jobmaster.scripts import Script
from jobmaster.store.replication import Replication
from jobmaster.store.stream_reads import StreamReader
from jobmaster.transport.clients import FastConnection

GROUP = "workers"
"""The consumer group every worker of every queue belongs to."""

ENQUEUE_CHUNK = 250
"""Jobs per enqueue script call: large batches are split so that no call blocks Redis long,
and so that a producer builds the next call while Redis runs the one before."""

ASCENDING_STATES = frozenset({JobState.SCHEDULED})


class QueueKeyLists:
    """The KEYS list of every script for one queue, computed once."""

    def __init__(self, k: QueueKeys) -> None:
        idx = k.index
        s = k.streams
        self.enqueue = (k.jobs, k.status, idx("queued"), idx("scheduled"), k.events, k.timers)
        self.streams = s
        self.claim = (
            k.jobs, k.status, idx("queued"), idx("active"), k.attempts, k.events, idx("failed"), *s,
            k.paused, k.limits, k.limit_due, k.timers, k.resource_wait, k.wake, k.limit_ready,
            k.limit_keys,
        )  # fmt: skip
        self.finish = (
            k.jobs, k.status, idx("active"), idx("scheduled"), k.attempts, k.logs, k.progress,
            k.results, k.result_expiry, k.events, k.timers, idx("succeeded"), idx("failed"),
            idx("cancelled"), k.webhook_due, k.webhook_deliveries, k.limits, k.unique,
        )  # fmt: skip
        self.promote = (
            k.status, idx("scheduled"), idx("queued"), k.events, k.timers, *s, idx("failed"),
            k.limits, k.limit_keys, k.limit_due,
        )  # fmt: skip
        self.requeue = (
            k.status, idx("active"), idx("queued"), k.attempts, k.events, *s, idx("cancelled"),
            k.limits, k.unique,
        )  # fmt: skip
        self.cancel = (
            k.status, idx("queued"), idx("scheduled"), idx("cancelled"), k.events, k.control, *s,
            k.limits, k.unique,
        )  # fmt: skip
        self.reschedule = (k.status, idx("queued"), idx("scheduled"), k.events, k.timers, *s)
        self.update = (k.jobs, k.status, k.events, *s)
        self.retry = (k.status, idx("queued"), idx("failed"), idx("cancelled"), k.events, *s)
        self.reclaim = (
            k.status, idx("active"), idx("queued"), k.attempts, k.events, idx("failed"), *s,
            idx("cancelled"), k.limits, k.unique, k.limit_keys,
        )  # fmt: skip
        self.renew = (k.status, idx("active"))
        self.overrun = (k.status, k.attempts)
        self.prune = (
            k.jobs, k.status, k.attempts, k.logs, k.progress, k.results, k.result_expiry,
            idx("succeeded"), idx("failed"), idx("cancelled"), k.limits,
        )  # fmt: skip
        self.delete = self.prune  # a job's records and the final-state indexes
        self.record_output = (k.logs, k.progress, k.log_followers, k.log_feed)
        self.save_schedule = (k.schedules, k.schedule_state, k.schedule_due, k.schedule_wake)
        self.fire_schedules = (
            k.schedule_state, k.schedule_due, k.jobs, k.status, idx("queued"), k.events, *s,
            k.limits, k.unique, k.limit_keys,
        )  # fmt: skip
        self.scheduler_lease = (k.scheduler_lease, k.scheduler, k.schedule_due, k.schedule_wake)
        self._keys = k
        self._claims: dict[str, tuple[str, ...]] = {}

    def claim_of(self, consumer: str) -> tuple[str, ...]:
        """The claim's KEYS for one consumer (with its claim memo)."""
        keys = self._claims.get(consumer)
        if keys is None:
            keys = self._claims[consumer] = (*self.claim, self._keys.claim_memo(consumer))
        return keys


class StoreConnection:
    """The clients, key layout and scripts that every part of the store shares.

    Args:
        redis: redis-py's client (closed by :meth:`close`).
        namespace: the prefix of every key.
        events_maxlen: about how many entries each queue's events stream keeps.
        log_bytes: the most log bytes kept per attempt.
        fast: the multiplexed connection of the hot path's scripts (None: redis-py).
        blocking_reads: makes a multiplexed connection for blocking reads (None: redis-py).
        replication: replicas that must acknowledge enqueues and attempt ends (None: none
            waited for).
    """

    def __init__(
        self,
        redis: Redis,
        namespace: str = "jobmaster",
        *,
        events_maxlen: int = 10_000,
        log_bytes: int = 256 * 1024,
        fast: FastConnection | None = None,
        blocking_reads: Callable[[], FastConnection] | None = None,
        replication: Replication | None = None,
    ) -> None:
        self.redis = redis
        self.replication = replication
        self.keys = Keys(namespace)
        self.events_maxlen = events_maxlen
        self.log_bytes = log_bytes
        self.fast = fast
        self._new_reader = blocking_reads
        self.blocking_reads = blocking_reads is not None
        """Whether blocking reads have multiplexed connections of their own."""
        self.cluster = isinstance(redis, RedisCluster)
        """Whether Redis is a Redis Cluster: nothing may touch keys of two slots at once."""
        self._readers: dict[str, StreamReader] = {}
        self._scripts: dict[str, Script] = {}
        self._key_lists: dict[str, QueueKeyLists] = {}

    def script(self, name: str) -> Script:
        """The script ``jobmaster/lua/<name>.lua``, ready to call (one object per name)."""
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = Script(self.redis, name, self.fast)
        return script

    def lists(self, queue: str) -> QueueKeyLists:
        """The KEYS lists of a queue's scripts."""
        lists = self._key_lists.get(queue)
        if lists is None:
            lists = self._key_lists[queue] = QueueKeyLists(self.keys.queue(queue))
        return lists

    def reader(self, purpose: str) -> StreamReader:
        """The blocking reads of one purpose, on connections of their own (multiplexed
        ones where the store has them: a blocked read holds its connection, and awaiting
        it costs less than redis-py's call; cancelling the wait takes effect at once,
        where redis-py may hold a cancelled blocking read until it returns)."""
        reader = self._readers.get(purpose)
        if reader is None:
            reader = self._readers[purpose] = self.new_reader()
        return reader

    def new_reader(self) -> StreamReader:
        """Blocking reads on connections of the caller's own, which the caller closes.
        Waiting on them can be cancelled at once."""
        return StreamReader(self.redis, self._new_reader, cluster=self.cluster)

    async def holding(
        self, queues: list[str], hash_of: Callable[[QueueKeys], str], field: str
    ) -> list[str]:
        """The queues whose hash (``hash_of`` their keys) has ``field``, in one round trip."""
        if not queues:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.hexists(hash_of(self.keys.queue(queue)), field)
            found = await pipe.execute()
        return [q for q, f in zip(queues, found, strict=True) if f]

    async def close(self) -> None:
        """Close every connection."""
        readers, self._readers = list(self._readers.values()), {}
        for reader in readers:
            await reader.close()
        if self.fast is not None:
            await self.fast.close()
        await self.redis.aclose()
