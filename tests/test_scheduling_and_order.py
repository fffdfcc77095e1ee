"""Which job runs when: priorities, delays, concurrency limits, and an idle worker that
does not poll Redis."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import redis

from jobmaster import JobState, Registry
from jobmaster.testing import run_jobs
from tests.conftest import command_calls, live_worker, wait_until

pytestmark = pytest.mark.deployments


async def test_higher_priority_jobs_run_first(registry: Registry) -> None:
    ran: list[tuple[int, int]] = []

    @registry.job()
    async def record(priority: int, n: int) -> None:
        ran.append((priority, n))

    for n in range(5):
        await record.options(priority=0).enqueue(0, n)
    for n in range(5):
        await record.options(priority=7).enqueue(7, n)
    await run_jobs(registry, concurrency=1)
    assert ran == [(7, n) for n in range(5)] + [(0, n) for n in range(5)]


async def test_default_priority_of_a_definition_is_used(registry: Registry) -> None:
    ran: list[str] = []

    @registry.job(priority=9)
    async def urgent() -> None:
        ran.append("urgent")

    @registry.job()
    async def routine() -> None:
        ran.append("routine")

    await routine.enqueue()
    await urgent.enqueue()
    await routine.enqueue()
    await run_jobs(registry, concurrency=1)
    assert ran == ["urgent", "routine", "routine"]


async def test_delayed_job_runs_no_sooner_than_its_delay(registry: Registry) -> None:
    @registry.job()
    async def later(n: int) -> int:
        return n * 2

    async with live_worker(registry):
        handle = await later.options(delay=0.3).enqueue(21)
        job = await handle.info()
        assert job.state is JobState.SCHEDULED
        assert job.scheduled_for is not None
        assert job.scheduled_for >= job.created_at + timedelta(seconds=0.3)
        assert await handle.result(timeout=5) == 42
    job = await handle.info()
    [attempt] = job.attempts
    assert attempt.started_at >= job.created_at + timedelta(seconds=0.3)
    assert attempt.started_at < job.created_at + timedelta(seconds=5)


async def test_job_at_a_future_time_runs_no_sooner(registry: Registry) -> None:
    @registry.job()
    async def later() -> str:
        return "done"

    async with live_worker(registry):
        at = datetime.now(UTC) + timedelta(seconds=0.3)
        handle = await later.options(at=at).enqueue()
        assert (await handle.info()).state is JobState.SCHEDULED
        assert await handle.result(timeout=5) == "done"
    [attempt] = (await handle.info()).attempts
    # Records keep milliseconds (the server's clock): allow for that resolution only.
    assert attempt.started_at >= at - timedelta(milliseconds=2)
    assert attempt.started_at < at + timedelta(seconds=5)


async def test_a_worker_runs_no_more_than_its_concurrency(registry: Registry) -> None:
    release = asyncio.Event()
    active = 0
    most_active = 0
    finished = 0

    @registry.job()
    async def hold(n: int) -> int:
        nonlocal active, most_active, finished
        active += 1
        most_active = max(most_active, active)
        try:
            await release.wait()
        finally:
            active -= 1
        finished += 1
        return n

    handles = await hold.enqueue_many([(n,) for n in range(6)])
    async with live_worker(registry, concurrency=2):
        await wait_until(lambda: active == 2, timeout=5)
        counts = await registry.count_jobs("default")
        assert counts[JobState.ACTIVE] == 2
        assert counts[JobState.QUEUED] == 4
        # Give an over-eager fetch loop the chance to claim more than it may run.
        for _ in range(10):
            await asyncio.sleep(0.02)
            assert (await registry.count_jobs("default"))[JobState.ACTIVE] <= 2
            assert active <= 2
        release.set()
        results = await asyncio.gather(*(h.result(timeout=5) for h in handles))
    assert results == list(range(6))
    assert finished == 6
    assert most_active == 2
    counts = await registry.count_jobs("default")
    assert counts[JobState.SUCCEEDED] == 6
    assert counts[JobState.ACTIVE] == counts[JobState.QUEUED] == 0


async def test_an_idle_worker_does_not_poll(registry: Registry, raw_redis: redis.Redis) -> None:
    @registry.job()
    async def noop() -> None:
        return None

    async with live_worker(registry):
        await wait_until(registry.workers, timeout=30)  # started: it has heartbeated
        handle = await noop.enqueue()  # the worker is really fetching
        await handle.result(timeout=5)
        before = command_calls(raw_redis, "evalsha", "xread")
        await asyncio.sleep(1.0)  # the observation window: an idle second
        during = command_calls(raw_redis, "evalsha", "xread") - before
        # Still responsive after the idle second: a new job is picked up at once.
        handle = await noop.enqueue()
        await handle.result(timeout=2)
    assert during < 20
