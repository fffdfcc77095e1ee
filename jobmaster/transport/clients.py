"""The Redis clients jobmaster makes from a URL: redis-py's, and its own fast path's."""

from __future__ import annotations

import redis
from redis.asyncio import BlockingConnectionPool, Redis

from jobmaster.transport.address import supports
from jobmaster.transport.multiplexed import MultiplexedConnection

SOCKET_TIMEOUT = 30.0
"""Seconds a connection waits for a reply; blocking reads wait up to 5 s, so it outlasts them."""

MAX_CONNECTIONS = 50
"""redis-py connections per event loop; beyond it, callers wait for a free connection
instead of failing."""

CONNECT_TIMEOUT = 5.0
"""Seconds to open a connection."""


def async_client(url: str) -> Redis:
    """redis-py's client of an event loop, on a pool of at most ``MAX_CONNECTIONS``."""
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
