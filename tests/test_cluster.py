"""jobmaster on a local 3-master Redis Cluster: queues spread over the masters, and nothing
sends a command that touches two slots."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from jobmaster import CancelOutcome, ConfigError, JobHandle, JobState, Registry, Retry
from jobmaster.embedded_cluster import EmbeddedCluster
from jobmaster.transport.cluster import slot_of
from tests.conftest import PROCAPP, finish, live_worker, run_cli, start_worker, wait_until


@pytest.fixture
def deployment() -> str:
    """Every test here runs on the session's 3-master cluster."""
    return "cluster"


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
        results = [await h.result(timeout=10) for h in many[::100]]
    assert results == [n * n for n in range(0, 600, 100)]


async def test_a_worker_process_over_several_masters_runs_lists_and_cancels(
    registry: Registry, redis_url: str, redis_cluster: EmbeddedCluster
) -> None:
    queues = ["alpha", "beta", "delta"]  # one on each master
    assert len(masters_of(redis_cluster, queues)) == 3

    @registry.job()
    async def add(a: int, b: int) -> int:
        return a + b

    @registry.job(retry=Retry(max_attempts=1))
    async def sleepy(seconds: float) -> float:
        return seconds

    worker = start_worker(PROCAPP, redis_url, "--queues", ",".join(queues), log_level="warning")
    try:
        for queue in reversed(queues):  # an idle worker wakes for each queue
            handle = await add.options(queue=queue).enqueue(1, 2)
            assert await handle.result(timeout=10) == 3
        (info,) = await wait_until(registry.workers, timeout=10)
        assert info.queues == queues
        running = await sleepy.options(queue="delta").enqueue(60)
        await wait_until(lambda: in_state(running, JobState.ACTIVE), timeout=10)
        assert await running.cancel() is CancelOutcome.REQUESTED
        await wait_until(lambda: in_state(running, JobState.CANCELLED), timeout=10)
        listing = run_cli(redis_url, "queues", "--json")
        assert listing.returncode == 0, listing.stderr
        assert {q["queue"] for q in json.loads(listing.stdout)} >= set(queues)
    finally:
        worker.send_signal(signal.SIGTERM)
        code, out = finish(worker)
    assert code == 0, out
    assert "failed" not in out, out  # no fetch, control or timer read ever failed


async def in_state(handle: JobHandle[Any], state: JobState) -> bool:
    return (await handle.info()).state == state


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+cluster://127.0.0.1:7000/3", "only database 0"),
        ("redis+cluster://127.0.0.1:7000,127.0.0.1:x", "bad node"),
        ("redis+cluster://:7000", "bad node"),
    ],
)
def test_a_bad_cluster_url_is_refused_when_the_registry_is_made(
    url: str, message: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=message):
        Registry(url, config_dir=tmp_path, environ={})


async def test_remote_control_of_a_worker_on_the_cluster(registry: Registry) -> None:
    @registry.job()
    async def echo(x: str) -> str:
        return x

    async with live_worker(registry, queues=["alpha", "delta"]) as worker:
        await wait_until(registry.workers, timeout=30)  # its start is slow on a loaded machine
        (paused,) = await registry.pause_worker(worker.id, timeout=5)
        assert paused.delivered
        assert paused.state == "paused"
        handle = await echo.options(queue="delta").enqueue("x")
        await asyncio.sleep(0.3)
        assert (await handle.info()).state == JobState.QUEUED  # paused: nothing claimed
        (resumed,) = await registry.resume_worker(worker.id, timeout=5)
        assert resumed.delivered
        assert resumed.state == "running"
        assert await handle.result(timeout=5) == "x"
