"""Fault injection under load: workers SIGKILLed and restarted, SIGTERM mid-load, Redis
killed and restarted, and racing reclaims. Each test reports its figures on stdout."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import time

import pytest
from redis.asyncio import Redis

from jobmaster import AttemptOutcome, Job, JobState, Registry
from jobmaster.codec import pack
from jobmaster.embedded import EmbeddedRedis
from jobmaster.records import job_record
from jobmaster.store import NewJob, Store
from tests.conftest import PROCAPP as APP
from tests.conftest import start_worker, wait_until


async def all_jobs(registry: Registry, ids: list[str]) -> list[Job]:
    store = registry.connection().store
    jobs = await asyncio.gather(*(store.inspection.job("default", i, with_logs=False) for i in ids))
    assert all(j is not None for j in jobs)
    return [j for j in jobs if j is not None]


async def settled(registry: Registry, total: int) -> bool:
    counts = await registry.count_jobs("default")
    return counts[JobState.SUCCEEDED] == total


def stop_all(workers: list[subprocess.Popen[str]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.communicate(timeout=30)


@pytest.mark.timeout(120)
async def test_workers_killed_repeatedly_under_load_lose_nothing(
    procapp: Registry, redis_url: str
) -> None:
    from tests.apps.procapp import work

    total = 3000
    handles = await work.enqueue_many([(i, 30) for i in range(total)])
    args = ("--lease", "0.5", "--concurrency", "20", "--grace", "0")
    workers = [start_worker(APP, redis_url, *args) for _ in range(3)]
    killed: dict[int, float] = {}  # pid -> when it was killed (wall clock)
    rng = random.Random(7)
    try:
        while len(killed) < 6 and not await settled(procapp, total):
            await asyncio.sleep(0.3)
            victim = rng.choice([w for w in workers if w.poll() is None])
            victim.kill()
            killed[victim.pid] = time.time()
            victim.communicate(timeout=10)
            workers.append(start_worker(APP, redis_url, *args))
        await wait_until(lambda: settled(procapp, total), timeout=60, interval=0.1)
    finally:
        stop_all(workers)
    jobs = await all_jobs(procapp, [h.id for h in handles])
    assert [j.result for j in jobs] == list(range(total))
    duplicates = 0
    for job in jobs:
        *lost, last = job.attempts
        assert last.outcome is AttemptOutcome.SUCCEEDED
        assert all(a.outcome is AttemptOutcome.LOST for a in lost), job
        assert all(a.pid in killed for a in lost), job  # only killed workers lost attempts
        duplicates += len(lost)
    # recovery: from the SIGKILL to the lost attempt being closed and its job requeued
    recoveries = sorted(
        a.finished_at.timestamp() - killed[a.pid]
        for j in jobs
        for a in j.attempts
        if a.outcome is AttemptOutcome.LOST and a.finished_at is not None
    )
    median = recoveries[len(recoveries) // 2] if recoveries else 0.0
    print(
        f"\n{total} jobs, {len(killed)} SIGKILLs, {duplicates} re-runs (each of a lost "
        f"attempt), recovery after a kill: median {median:.2f}s, max "
        f"{max(recoveries, default=0):.2f}s (lease 0.5s)"
    )
    assert len(killed) >= 3


@pytest.mark.timeout(60)
async def test_sigterm_under_load_exits_within_grace_and_loses_nothing(
    procapp: Registry, redis_url: str
) -> None:
    from tests.apps.procapp import work

    total = 1000
    handles = await work.enqueue_many([(i, 20) for i in range(total)])
    worker = start_worker(APP, redis_url, "--concurrency", "50", "--grace", "5")
    await wait_until(lambda: _succeeded_at_least(procapp, 100), timeout=20)
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    out, _ = worker.communicate(timeout=30)
    took = time.monotonic() - started
    assert worker.returncode == 0, out
    assert took < 5 + 2
    counts = await procapp.count_jobs("default")
    assert counts[JobState.ACTIVE] == 0  # nothing left holding a lease
    assert counts[JobState.SUCCEEDED] + counts[JobState.QUEUED] == total
    finisher = start_worker(APP, redis_url, "--burst")
    finisher.communicate(timeout=60)
    jobs = await all_jobs(procapp, [h.id for h in handles])
    assert all(j.state is JobState.SUCCEEDED for j in jobs)
    assert all(len(j.attempts) == 1 for j in jobs)  # the grace sufficed: nothing re-ran
    print(f"\nSIGTERM after {total - counts[JobState.QUEUED]} done: exited 0 in {took:.2f}s")


async def _succeeded_at_least(procapp: Registry, n: int) -> bool:
    return (await procapp.count_jobs("default"))[JobState.SUCCEEDED] >= n


@pytest.mark.timeout(120)
async def test_redis_killed_and_restarted_with_aof_under_load(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with EmbeddedRedis(appendonly=True) as server:
        registry = Registry(server.url, config_dir=tmp_path, environ={})

        @registry.job()
        async def work(n: int, ms: float) -> int:  # same name and signature as procapp's
            await asyncio.sleep(ms / 1000)
            return n

        total = 2000
        handles = await work.enqueue_many([(i, 10) for i in range(total)])
        args = ("--lease", "1", "--concurrency", "20", "--grace", "0")
        workers = [start_worker(APP, server.url, *args) for _ in range(2)]
        try:
            await wait_until(lambda: _succeeded_at_least(registry, 200), timeout=30)
            server.kill()
            await asyncio.sleep(1.0)
            server.start()
            await registry.aclose()  # drop the producer's dead connections
            await wait_until(lambda: settled(registry, total), timeout=90, interval=0.2)
            assert all(w.poll() is None for w in workers)  # the workers outlived the outage
        finally:
            stop_all(workers)
        jobs = await all_jobs(registry, [h.id for h in handles])
        assert [j.result for j in jobs] == list(range(total))
        reruns = sum(len(j.attempts) - 1 for j in jobs)
        assert all(a.outcome is AttemptOutcome.LOST for j in jobs for a in j.attempts[:-1])
        print(f"\nRedis SIGKILLed and restarted under load: {total} jobs, {reruns} re-runs")
        await registry.aclose()


async def test_racing_reclaims_take_each_expired_job_once(redis_url: str) -> None:
    clients = [Store(Redis.from_url(redis_url)) for _ in range(4)]
    try:
        first = clients[0]
        for round_ in range(20):
            ids = [f"r{round_}-{i}" for i in range(50)]
            record = pack(job_record("noop", pack({}), 0, 0))
            await first.jobs.enqueue("race", [NewJob(i, record, 0) for i in ids])
            claim = await first.jobs.claim("race", "ghost", 50, 1, "host", 1)  # 1 ms lease
            assert len(claim.jobs) == 50
            await asyncio.sleep(0.01)
            results = await asyncio.gather(*(c.leases.reclaim("race", max_lost=3) for c in clients))
            taken = [i for r in results for i in r.requeued]
            assert sorted(taken) == sorted(ids)  # every expired lease taken, none twice
            again = await first.jobs.claim("race", "ghost", 50, 60_000, "host", 1)
            assert sorted(j.id for j in again.jobs) == sorted(ids)
            for j in again.jobs:
                assert j.attempt == 2
            await first.jobs.finish(
                "race",
                [_done(j.id, f"ghost/{j.attempt}") for j in again.jobs],
                retention_ms=60_000,
            )
    finally:
        for client in clients:
            await client.close()


def _done(job_id: str, token: str):  # type: ignore[no-untyped-def]
    from jobmaster.store import Completion

    return Completion(job_id, token, "succeeded", "succeeded", result=pack(None))
