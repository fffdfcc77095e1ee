"""Redis Cluster changing under load: a busy queue's slot moved to another master, and a
master killed (its replica takes over). Each test has a cluster of its own."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from jobmaster import JobHandle, JobState, Registry, Retry
from jobmaster.embedded_cluster import EmbeddedCluster
from jobmaster.transport.cluster import slot_of
from tests.conftest import live_worker, wait_until

# redis-py's cluster client drops the node objects of a slot map that changed, with the
# connections in use at the time, to the garbage collector, which warns (ResourceWarning)
# whenever it runs: ignored here, and collected before each test ends (collect_dropped_nodes).
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

QUEUE = "delta"
SLOT = slot_of("{delta}")


class Overlaps:
    """Runs of each job id, and whether two ever ran at once."""

    def __init__(self) -> None:
        self.running: set[str] = set()
        self.runs: dict[str, int] = {}
        self.overlapped: list[str] = []


def declare(registry: Registry, seen: Overlaps) -> object:
    @registry.job(retry=Retry(max_attempts=5, backoff=0.05))
    async def step(key: str) -> str:
        if key in seen.running:
            seen.overlapped.append(key)
        seen.running.add(key)
        seen.runs[key] = seen.runs.get(key, 0) + 1
        try:
            await asyncio.sleep(0.005)
        finally:
            seen.running.discard(key)
        return key

    return step


@contextlib.asynccontextmanager
async def cluster_registry(
    cluster: EmbeddedCluster, tmp_path: Path, **settings: float
) -> AsyncIterator[Registry]:
    reg = Registry(cluster.url, config_dir=tmp_path, environ={}, **settings)  # type: ignore[arg-type]
    try:
        yield reg
    finally:
        await reg.aclose()
        reg.close()
        del reg
        collect_dropped_nodes()


@pytest.fixture
def own_cluster() -> Iterator[EmbeddedCluster]:
    with EmbeddedCluster() as cluster:
        yield cluster
    collect_dropped_nodes()


def collect_dropped_nodes() -> None:
    """redis-py's cluster client drops the node objects of a slot map that changed with the
    connections that were in use then, and leaves them to the garbage collector, which
    warns (ResourceWarning): collected here, so that the warning lands in no later test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


async def test_moving_a_busy_queues_slot_loses_nothing_and_runs_nothing_twice(
    own_cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    seen = Overlaps()
    async with cluster_registry(own_cluster, tmp_path) as registry:
        step = declare(registry, seen)
        handles: list[JobHandle[str]] = []
        keys: list[str] = []
        source = own_cluster.master_of(SLOT)
        target = next(n for n in own_cluster.masters_now() if n is not source)

        async def produce(count: int) -> None:
            for _ in range(count):
                keys.append(f"j{len(keys)}")
                handles.append(await step.options(queue=QUEUE).enqueue(keys[-1]))  # type: ignore[attr-defined]
                await asyncio.sleep(0.002)

        await produce(200)
        async with live_worker(registry, queues=[QUEUE, "alpha"], concurrency=20):
            moving = asyncio.to_thread(own_cluster.move_slot, SLOT, target, 1, 0.1)
            moved, _ = await asyncio.gather(moving, produce(300))
            assert moved >= 5  # the queue's keys, one at a time while jobs ran
            assert own_cluster.master_of(SLOT) is target

            async def all_done() -> bool:
                states = [(await h.info()).state for h in handles]
                return all(s == JobState.SUCCEEDED for s in states)

            await wait_until(all_done, timeout=30, interval=0.2)
    assert not seen.overlapped
    assert set(seen.runs) == set(keys)
    assert max(seen.runs.values()) == 1  # a move loses no lease: nothing ran twice


@pytest.fixture
def replicated_cluster() -> Iterator[EmbeddedCluster]:
    with EmbeddedCluster(replicas=1) as cluster:
        yield cluster
    collect_dropped_nodes()


async def test_a_master_killed_under_load_its_replica_takes_over_and_jobs_go_on(
    replicated_cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    cluster = replicated_cluster
    seen = Overlaps()
    async with cluster_registry(cluster, tmp_path, lease=2.0) as registry:
        step = declare(registry, seen)
        keys = [f"k{n}" for n in range(300)]
        handles = [await step.options(queue=QUEUE).enqueue(k) for k in keys]  # type: ignore[attr-defined]
        master = cluster.master_of(SLOT)
        # acknowledged by the replica: what min_replicas_acked would wait for
        assert master.command("WAIT", 1, 5000, timeout=6) == 1
        async with live_worker(registry, queues=[QUEUE], concurrency=10):
            await wait_until(lambda: len(seen.runs) >= 50, timeout=10)
            killed = time.monotonic()
            master.kill()
            await wait_until(lambda: cluster.master_of(SLOT) is not master, timeout=30)

            async def all_done() -> bool:
                states = [(await h.info()).state for h in handles]
                return all(s == JobState.SUCCEEDED for s in states)

            await wait_until(all_done, timeout=60, interval=0.2)
            took = time.monotonic() - killed
    assert set(seen.runs) == set(keys)
    assert not seen.overlapped
    assert took < 30
