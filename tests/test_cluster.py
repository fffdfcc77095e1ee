"""jobmaster on a local 3-master Redis Cluster: queues spread over the masters, and nothing
sends a command that touches two slots."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from jobmaster import Registry
from jobmaster.embedded_cluster import EmbeddedCluster
from jobmaster.transport.cluster import slot_of
from tests.conftest import live_worker

pytestmark = pytest.mark.parametrize("deployment", ["cluster"], indirect=True)

QUEUES = ["alpha", "beta", "gamma", "delta"]


def masters_of(cluster: EmbeddedCluster, queues: list[str]) -> set[int]:
    """The ports of the masters that serve these queues' slots."""
    table = cluster.nodes[0].command("CLUSTER", "SLOTS")
    ports = set()
    for queue in queues:
        slot = slot_of(f"{{{queue}}}")
        ports |= {int(m[1]) for start, end, m, *_ in table if start <= slot <= end}
    return ports


async def test_queues_spread_over_masters_and_one_worker_runs_them_all(
    registry: Registry, redis_cluster: EmbeddedCluster
) -> None:
    assert len(masters_of(redis_cluster, QUEUES)) >= 2  # the test means something

    @registry.job()
    async def double(x: int) -> int:
        return 2 * x

    handles = [await double.options(queue=queue).enqueue(n) for n, queue in enumerate(QUEUES * 5)]
    async with live_worker(registry, queues=QUEUES, concurrency=10):
        results = [await h.result(timeout=10) for h in handles]
    assert results == [2 * n for n in range(len(handles))]


async def test_an_idle_worker_on_several_queues_wakes_for_each(registry: Registry) -> None:
    @registry.job()
    async def echo(x: str) -> str:
        return x

    async with live_worker(registry, queues=QUEUES, concurrency=4) as worker:
        for queue in reversed(QUEUES):  # each enqueued once the worker waits
            await asyncio.sleep(0.2)
            handle = await echo.options(queue=queue).enqueue(queue)
            assert await handle.result(timeout=5) == queue
        assert worker is not None


async def test_enqueue_many_and_sync_enqueue(registry: Registry, tmp_path: Path) -> None:
    @registry.job()
    def square(x: int) -> int:
        return x * x

    many = await square.options(queue="beta").enqueue_many([(n,) for n in range(600)])
    one = await asyncio.to_thread(square.options(queue="gamma").enqueue_sync, 7)
    async with live_worker(registry, queues=["beta", "gamma"], concurrency=20):
        assert await one.result(timeout=10) == 49
        assert [await h.result(timeout=10) for h in many[::100]] == [
            n * n for n in range(0, 600, 100)
        ]
