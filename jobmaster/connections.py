"""A registry's connections to Redis: a store and a result waiter per event loop, the
blocking producer of the ``enqueue*_sync`` methods, and the event loop that runs the
other ``*_sync`` methods."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.asyncio import Redis

from jobmaster.settings import Settings
from jobmaster.store import Replication, Store
from jobmaster.store.blocking import BlockingProducer
from jobmaster.sync_runner import SyncRunner
from jobmaster.transport import clients
from jobmaster.transport.clients import FastConnection
from jobmaster.waiting import JobWaiter

T = TypeVar("T")


@dataclass(frozen=True)
class Connection:
    """A store and a result waiter bound to one event loop."""

    store: Store
    waiter: JobWaiter


class Connections:
    """Opens, keeps and closes the connections of one registry.

    Attributes:
        per_loop: the connection of each event loop that used the registry.
        blocking: the blocking producer, once :meth:`open_blocking_producer` made it.
        redis_factory: makes a Redis client for each event loop and worker.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis_factory: Callable[[], Redis] = self.connect
        self.per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Connection] = (
            weakref.WeakKeyDictionary()
        )
        self.blocking: BlockingProducer | None = None
        self._sync: SyncRunner | None = None
        self._lock = threading.Lock()

    def connect(self) -> Redis:
        """A redis-py client on ``redis_url`` (the default ``redis_factory``)."""
        return clients.async_client(self.settings.redis_url)

    def new_store(self) -> Store:
        """A store on a new Redis client (the caller closes it)."""
        settings = self.settings
        fast = reader = None
        if self.own_connections():

            def reader() -> FastConnection:
                return clients.fast_connection(settings.redis_url)

            fast = reader()
        return Store(
            self.redis_factory(),
            settings.namespace,
            events_maxlen=settings.events_maxlen,
            log_bytes=settings.log_bytes,
            fast=fast,
            blocking_reads=reader,
            replication=self.replication(),
        )

    def replication(self) -> Replication | None:
        """The acknowledgements that writes wait for (``min_replicas_acked``), if any."""
        settings = self.settings
        if not settings.min_replicas_acked:
            return None
        return Replication(
            settings.min_replicas_acked, max(1, int(settings.replicas_ack_timeout * 1000))
        )

    def uses_default_client(self) -> bool:
        """Whether the Redis clients come from ``redis_url`` (not a replaced factory)."""
        return self.redis_factory == self.connect

    def own_connections(self) -> bool:
        """Whether jobmaster opens its connections itself (the fast paths need a plain
        ``redis://`` URL and the default client; a client of one's own is used as it is)."""
        return self.uses_default_client() and clients.supports(self.settings.redis_url)

    def open(self) -> Connection:
        """The running event loop's connection, opened now if it has none."""
        loop = asyncio.get_running_loop()
        conn = self.per_loop.get(loop)
        if conn is None:
            store = self.new_store()
            conn = self.per_loop[loop] = Connection(store, JobWaiter(store))
        return conn

    def open_blocking_producer(self) -> BlockingProducer | None:
        """The blocking producer, made on first use; None where the fast paths do not
        apply."""
        if self.blocking is None and self.own_connections():
            settings = self.settings
            with self._lock:
                if self.blocking is None:
                    self.blocking = BlockingProducer(
                        settings.redis_url,
                        settings.namespace,
                        events_maxlen=settings.events_maxlen,
                        timeout=clients.SOCKET_TIMEOUT,
                        spin=settings.reply_spin,
                        replication=self.replication(),
                    )
        return self.blocking

    def run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the private event loop of synchronous callers."""
        with self._lock:
            if self._sync is None:
                self._sync = SyncRunner()
        return self._sync.run(coro)

    async def aclose(self) -> None:
        """Close the running event loop's connection, if it has one."""
        conn = self.per_loop.pop(asyncio.get_running_loop(), None)
        if conn is not None:
            await conn.waiter.close()
            await conn.store.close()

    def close(self) -> None:
        """Close the blocking producer and the synchronous callers' loop and connection."""
        with self._lock:
            runner, self._sync = self._sync, None
            blocking, self.blocking = self.blocking, None
        if blocking is not None:
            blocking.close()
        if runner is not None:
            runner.run(self.aclose())
            runner.close()
