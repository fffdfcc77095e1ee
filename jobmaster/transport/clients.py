"""The Redis clients jobmaster makes from a URL: redis-py's, and its own fast path's.

``redis://`` and ``rediss://`` URLs name one server; ``redis+sentinel://`` ones a Sentinel
deployment whose master every connection finds through the sentinels
(:mod:`jobmaster.transport.sentinel`)."""

from __future__ import annotations

import redis
from redis.asyncio import BlockingConnectionPool, Redis

from jobmaster.transport import address, sentinel
from jobmaster.transport.multiplexed import MultiplexedConnection

SOCKET_TIMEOUT = 30.0
"""Seconds a connection waits for a reply; blocking reads wait up to 5 s, so it outlasts them."""

MAX_CONNECTIONS = 50
"""redis-py connections per event loop; beyond it, callers wait for a free connection
instead of failing."""

CONNECT_TIMEOUT = 5.0
"""Seconds to open a connection."""


def supports(url: str) -> bool:
    """Whether jobmaster's own connections speak to this URL (plain TCP: ``redis://``,
    ``redis+sentinel://``); other URLs (``rediss://``, ``unix://``) use redis-py's."""
    return address.supports(url) or url.startswith("redis+sentinel://")


def async_client(url: str) -> Redis:
    """redis-py's client of an event loop, on a pool of at most ``MAX_CONNECTIONS`` (a
    Sentinel deployment's: on redis-py's Sentinel pool, which has no such bound)."""
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
    if sentinel.is_sentinel(url):
        return sentinel.sync_master(
            url, socket_timeout=socket_timeout, socket_connect_timeout=CONNECT_TIMEOUT
        )
    return redis.Redis.from_url(
        url, socket_timeout=socket_timeout, socket_connect_timeout=CONNECT_TIMEOUT
    )


def fast_connection(url: str) -> MultiplexedConnection:
    """A multiplexed connection (the hot path's, or one for blocking reads); the URL must
    be one it :func:`~jobmaster.transport.address.supports`."""
    return MultiplexedConnection(url, timeout=SOCKET_TIMEOUT, connect_timeout=CONNECT_TIMEOUT)


__all__ = [
    "CONNECT_TIMEOUT",
    "MAX_CONNECTIONS",
    "SOCKET_TIMEOUT",
    "async_client",
    "fast_connection",
    "supports",
    "sync_client",
]
