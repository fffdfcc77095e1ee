"""The Redis clients jobmaster makes from a URL: redis-py's, and its own fast path's.

A ``redis+cluster://`` URL gives redis-py's cluster clients (typed here as the single-server
ones, whose commands they share: the store sends them only commands of one slot each) and
a :class:`ClusterConnection` for the fast path. ``redis://`` and ``rediss://`` URLs name one
server; ``redis+sentinel://`` ones a Sentinel deployment whose master every connection finds
through the sentinels (:mod:`jobmaster.transport.sentinel`)."""

from __future__ import annotations

from typing import Any, cast

import redis
import redis.cluster
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from jobmaster.transport import address, sentinel
from jobmaster.transport.address import ClusterSeeds, is_cluster
from jobmaster.transport.cluster import ClusterConnection
from jobmaster.transport.multiplexed import MultiplexedConnection

FastConnection = MultiplexedConnection | ClusterConnection
"""The fast path's connection: to one server, or to the masters of a cluster."""

SOCKET_TIMEOUT = 30.0
"""Seconds a connection waits for a reply; blocking reads wait up to 5 s, so it outlasts them."""

MAX_CONNECTIONS = 50
"""redis-py connections per event loop; beyond it, callers wait for a free connection
instead of failing."""

CONNECT_TIMEOUT = 5.0
"""Seconds to open a connection."""


def supports(url: str) -> bool:
    """Whether jobmaster's own connections speak to this URL (plain TCP: ``redis://``,
    ``redis+cluster://``, ``redis+sentinel://``); other URLs (``rediss://``,
    ``rediss+cluster://``, ``unix://``) use redis-py's."""
    return address.supports(url) or url.startswith("redis+sentinel://")


def async_client(url: str) -> Redis:
    """redis-py's client of an event loop, on a pool of at most ``MAX_CONNECTIONS`` (on a
    cluster, redis-py's pool per node, which opens a connection per concurrent call; a
    Sentinel deployment's: on redis-py's Sentinel pool, which has no such bound either)."""
    if is_cluster(url):
        seeds = ClusterSeeds.parse(url)
        cluster = RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in seeds.nodes],
            username=seeds.username,
            password=seeds.password,
            ssl=seeds.tls,
            # no cap: redis-py's cluster client fails a call past it rather than waiting
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
        )
        return cast(Redis, cluster)
    if sentinel.is_sentinel(url):
        return sentinel.async_master(
            url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT
        )
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=SOCKET_TIMEOUT,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
    )
    return Redis.from_pool(pool)


def sync_client(url: str, socket_timeout: float) -> redis.Redis:
    """redis-py's synchronous client, for a thread of its own."""
    if is_cluster(url):
        seeds = ClusterSeeds.parse(url)
        options: dict[str, Any] = {"ssl": seeds.tls}
        cluster = redis.cluster.RedisCluster(
            startup_nodes=[redis.cluster.ClusterNode(h, p) for h, p in seeds.nodes],  # type: ignore[no-untyped-call]
            username=seeds.username,
            password=seeds.password,
            socket_timeout=socket_timeout,
            socket_connect_timeout=CONNECT_TIMEOUT,
            **options,
        )
        return cast(redis.Redis, cluster)
    if sentinel.is_sentinel(url):
        return sentinel.sync_master(
            url, socket_timeout=socket_timeout, socket_connect_timeout=CONNECT_TIMEOUT
        )
    return redis.Redis.from_url(
        url, socket_timeout=socket_timeout, socket_connect_timeout=CONNECT_TIMEOUT
    )


def fast_connection(url: str) -> FastConnection:
    """A multiplexed connection (the hot path's, or one for blocking reads), routed by slot
    on a cluster; the URL must be one it :func:`~jobmaster.transport.address.supports`."""
    if is_cluster(url):
        return ClusterConnection(url, timeout=SOCKET_TIMEOUT, connect_timeout=CONNECT_TIMEOUT)
    return MultiplexedConnection(url, timeout=SOCKET_TIMEOUT, connect_timeout=CONNECT_TIMEOUT)


__all__ = [
    "CONNECT_TIMEOUT",
    "MAX_CONNECTIONS",
    "SOCKET_TIMEOUT",
    "FastConnection",
    "async_client",
    "fast_connection",
    "is_cluster",
    "supports",
    "sync_client",
]
