"""Sentinel: ``redis+sentinel://`` URLs, and a master killed under load (producers and a
real worker process go on; with ``min_replicas_acked`` nothing acknowledged is lost)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.exceptions import ConnectionError

from jobmaster import JobNotFound, JobState, NotReplicated, RedisUnavailable, Registry
from jobmaster.embedded import EmbeddedRedis
from jobmaster.errors import ConfigError
from jobmaster.transport import clients
from jobmaster.transport.blocking import BlockingConnection
from tests.conftest import PROCAPP, finish, run_cli, start_worker, stop_process, wait_until
from tests.sentinel_servers import SERVICE, SentinelDeployment

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def deployment() -> Iterator[SentinelDeployment]:
    servers = SentinelDeployment(replicas=2)
    yield servers
    servers.close()


def sentinel_registry(url: str, tmp_path: Path, **settings: object) -> Registry:
    registry = Registry(url, config_dir=tmp_path, environ={}, lease=3, **settings)  # type: ignore[arg-type]

    @registry.job()
    async def add(a: int, b: int) -> int:
        return a + b

    return registry


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://127.0.0.1:26379", "does not name its sentinels and service"),
        ("redis+sentinel://h1:26379,h2:port/jobs/0", "bad port or DB number"),
        ("redis+sentinel://h1:26379/jobs/zero", "bad port or DB number"),
    ],
)
def test_a_sentinel_url_that_does_not_fit_is_refused_at_once(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        Registry(url, environ={})


def test_min_replicas_acked_comes_from_the_url_query_too() -> None:
    registry = Registry("redis://127.0.0.1:1/0?min_replicas_acked=2", environ={})
    assert registry.settings.min_replicas_acked == 2
    assert registry.settings.redis_url == "redis://127.0.0.1:1/0"
    registry = Registry("redis://127.0.0.1:1/0", environ={"JOBMASTER_MIN_REPLICAS_ACKED": "1"})
    assert registry.settings.min_replicas_acked == 1


async def test_jobs_run_through_the_sentinels_master(
    deployment: SentinelDeployment, tmp_path: Path
) -> None:
    registry = sentinel_registry(deployment.url, tmp_path, min_replicas_acked=2)
    add = registry.jobs["add"]
    worker = start_worker(PROCAPP, deployment.url, "--concurrency", "5", log_level="warning")
    try:
        first = await add.enqueue(1, 2)
        second = add.enqueue_sync(3, 4)
        assert await first.result(timeout=20) == 3
        assert await second.result(timeout=20) == 7
    finally:
        stop_process(worker)
        await registry.aclose()
        registry.close()
    code, out = finish(worker)
    assert code == 0, out


def test_the_command_line_through_the_sentinels(deployment: SentinelDeployment) -> None:
    url = deployment.url
    enqueued = run_cli(url, "enqueue", PROCAPP, "add", "--args", '{"a": 2, "b": 3}')
    assert enqueued.returncode == 0, enqueued.stderr
    job_id = enqueued.stdout.strip()
    worker = run_cli(url, "worker", PROCAPP, "--burst")
    assert worker.returncode == 0, worker.stdout + worker.stderr
    shown = run_cli(url, "jobs", "show", job_id, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["result"] == 5


async def test_an_enqueue_no_replica_acknowledged_raises_with_its_handles(
    deployment: SentinelDeployment, tmp_path: Path
) -> None:
    """Three replicas asked of two: the job is written, and the caller is told."""
    url = f"{deployment.url}?min_replicas_acked=3&replicas_ack_timeout=0.2"
    registry = sentinel_registry(url, tmp_path)
    assert registry.settings.replicas_ack_timeout == 0.2
    add = registry.jobs["add"]
    try:
        with pytest.raises(NotReplicated) as raised:
            await add.options(job_id="once").enqueue(1, 2)
        assert raised.value.acked == 2
        assert [h.id for h in raised.value.handles] == ["once"]
        assert (await registry.get_job("once")).state == JobState.QUEUED
        with pytest.raises(NotReplicated):
            add.enqueue_sync(1, 2)
    finally:
        await registry.aclose()
        registry.close()


PACE = 0.005
"""Seconds a producer waits between jobs (about 200 jobs/s each: load, not a flood)."""


class Producer:
    """Enqueues ``add`` jobs with ids of its own, each until one call is acknowledged."""

    def __init__(self, registry: Registry, prefix: str) -> None:
        self.handler = registry.jobs["add"]
        self.prefix = prefix
        self.acknowledged: list[str] = []
        self.refusals = 0
        self.stop = False

    def job_id(self) -> str:
        return f"{self.prefix}-{len(self.acknowledged)}"

    async def run_async(self) -> None:
        while not self.stop:
            try:
                await self.handler.options(job_id=self.job_id()).enqueue(1, 1)
            except RedisUnavailable:  # NotReplicated too: sent again with its id
                self.refusals += 1
                await asyncio.sleep(0.05)
            else:
                self.acknowledged.append(self.job_id())
                await asyncio.sleep(PACE)

    def run_sync(self) -> None:
        while not self.stop:
            try:
                self.handler.options(job_id=self.job_id()).enqueue_sync(1, 1)
            except RedisUnavailable:
                self.refusals += 1
                time.sleep(0.05)
            else:
                self.acknowledged.append(self.job_id())
                time.sleep(PACE)


async def lost_jobs(registry: Registry, ids: list[str]) -> tuple[list[str], int]:
    """The acknowledged jobs missing after the failover, and how many ran more than once
    (once every job there is has ended)."""
    missing: list[str] = []
    twice = 0
    for job_id in ids:
        try:
            job = await registry.get_job(job_id, "default")
        except JobNotFound:
            missing.append(job_id)
            continue
        if job.state != JobState.SUCCEEDED:
            return missing, -1
        twice += len(job.attempts) > 1
    return missing, twice


@pytest.mark.parametrize("acked", [0, 1])
async def test_a_master_killed_under_load(
    deployment: SentinelDeployment, tmp_path: Path, acked: int
) -> None:
    """Producers (async and sync) and a worker process run; the replicas are cut off from
    the master (replication lags), then the master is killed. Without min_replicas_acked
    the enqueues the master acknowledged alone are lost; with it, none that returned."""
    registry = sentinel_registry(deployment.url, tmp_path, min_replicas_acked=acked)
    env = {"JOBMASTER_LEASE": "3", "JOBMASTER_MIN_REPLICAS_ACKED": str(acked)}
    worker = start_worker(
        PROCAPP, deployment.url, "--concurrency", "20", env=env, log_level="warning"
    )
    async_producer, sync_producer = Producer(registry, "a"), Producer(registry, "s")
    thread = threading.Thread(target=sync_producer.run_sync)
    task = asyncio.create_task(async_producer.run_async())
    thread.start()
    producers = (async_producer, sync_producer)
    try:
        await wait_until(lambda: all(len(p.acknowledged) >= 100 for p in producers), 30)
        at_cut = [(len(p.acknowledged), p.refusals) for p in producers]
        deployment.cut_replication()
        await wait_until(  # the master alone acknowledged more jobs, or refused some
            lambda: all(
                len(p.acknowledged) >= n + 50 or p.refusals > r
                for p, (n, r) in zip(producers, at_cut, strict=True)
            ),
            30,
        )
        at_kill = [len(p.acknowledged) for p in producers]
        old_port = deployment.master_port()
        deployment.kill_master()
        killed = time.monotonic()
        new_port = await asyncio.to_thread(deployment.wait_for_failover, old_port)
        failover = time.monotonic() - killed
        await wait_until(
            lambda: all(len(p.acknowledged) > n for p, n in zip(producers, at_kill, strict=True)),
            60,
        )
        resumed = time.monotonic() - killed
        await wait_until(
            lambda: all(
                len(p.acknowledged) >= n + 100 for p, n in zip(producers, at_kill, strict=True)
            ),
            60,
        )
    finally:
        for producer in producers:
            producer.stop = True
        await task
        await asyncio.to_thread(thread.join, 30)
    ids = async_producer.acknowledged + sync_producer.acknowledged
    in_window = [
        job_id
        for p, (n, _), k in zip(producers, at_cut, at_kill, strict=True)
        for job_id in p.acknowledged[n:k]
    ]

    async def ended() -> tuple[list[str], int] | None:
        missing, twice = await lost_jobs(registry, ids)
        return (missing, twice) if twice >= 0 else None

    try:
        missing, twice = await wait_until(ended, 60, interval=0.5)
    except AssertionError:
        stop_process(worker)
        raise AssertionError(f"jobs did not end:\n{finish(worker)[1][-5000:]}") from None
    assert worker.poll() is None, "the worker did not outlive the failover"
    stop_process(worker)
    await registry.aclose()
    registry.close()
    code, out = finish(worker)
    print(
        f"\nmin_replicas_acked={acked}: master {old_port} killed, {new_port} promoted in "
        f"{failover:.1f}s, first acknowledged enqueue {resumed:.1f}s after the kill; "
        f"{len(ids)} jobs acknowledged, {len(in_window)} while the replicas were cut off; "
        f"{len(missing)} lost, {twice} ran twice; refused calls "
        f"{async_producer.refusals}+{sync_producer.refusals}"
    )
    assert code == 0, out
    # Only what no replica had is lost: jobs acknowledged after the cut, up to the kill
    # (give or take the call each producer had under way at either moment).
    window = {
        job_id
        for p, (n, _), k in zip(producers, at_cut, at_kill, strict=True)
        for job_id in p.acknowledged[n : k + 1]
    }
    assert set(missing) <= window
    if acked:
        assert missing == []
        assert len(in_window) <= len(producers)  # acknowledged by the replicas just before
    else:
        assert len(missing) >= len(in_window) - len(producers) > 0


async def test_a_graceful_failover_moves_producers_and_workers_at_once(
    deployment: SentinelDeployment, tmp_path: Path
) -> None:
    """SENTINEL FAILOVER makes the old master a replica, alive: the open connections to
    it are closed or answer READONLY, and the next call finds the new master itself."""
    registry = sentinel_registry(deployment.url, tmp_path)
    add = registry.jobs["add"]
    worker = start_worker(PROCAPP, deployment.url, "--concurrency", "5", log_level="warning")
    try:
        assert await (await add.enqueue(1, 2)).result(timeout=20) == 3
        assert await add.enqueue_sync(2, 2).result(timeout=20) == 4
        old_port = deployment.master_port()
        deployment.sentinels[0].client.execute_command("SENTINEL", "FAILOVER", SERVICE)
        await asyncio.to_thread(deployment.wait_for_failover, old_port)
        # no RedisUnavailable: each connection notices and goes to the new master at once
        after = await add.enqueue(3, 3)
        after_sync = add.enqueue_sync(4, 4)
        assert await after.result(timeout=30) == 6
        assert await after_sync.result(timeout=30) == 8
    finally:
        stop_process(worker)
        await registry.aclose()
        registry.close()
    code, out = finish(worker)
    assert code == 0, out


async def test_a_connection_to_a_master_made_replica_is_dropped_and_opened_again() -> None:
    """A plain server made a replica keeps its clients; their next write answers READONLY,
    which drops the connection (a ConnectionError: nothing was written) instead of
    failing every later call on it."""
    with EmbeddedRedis() as primary, EmbeddedRedis() as other:
        fast = clients.fast_connection(primary.url)
        blocking = BlockingConnection(primary.url)
        try:
            first_id = await fast.execute("CLIENT", "ID")
            blocking_id = blocking.pipeline([["CLIENT", "ID"]])[0]
            demote = redis.Redis(port=primary.port)
            demote.replicaof("127.0.0.1", other.port)
            with pytest.raises(ConnectionError, match="no longer the master"):
                await fast.execute("SET", "k", "v")
            with pytest.raises(ConnectionError, match="no longer the master"):
                blocking.pipeline([["SET", "k", "v"]])
            demote.replicaof("NO", "ONE")
            demote.close()
            assert await fast.execute("SET", "k", "v") == b"OK"
            assert await fast.execute("CLIENT", "ID") != first_id
            assert blocking.pipeline([["CLIENT", "ID"]])[0] != blocking_id
        finally:
            await fast.close()
            blocking.close()
