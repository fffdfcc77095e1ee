"""An attempt never overlaps its successor: a sync handler past its timeout keeps its slot and
lease until its thread returns, leases are renewed whatever a handler does to the event loop,
and a worker tracks two attempts of one job apart."""

from __future__ import annotations

import threading
import time

import redis

from jobmaster import AttemptOutcome, Context, JobState, Registry, Retry
from jobmaster.keys import Keys
from tests.conftest import (
    PROCAPP,
    finish,
    live_worker,
    start_worker,
    stop_process,
    wait_until,
)


async def test_retry_of_a_sync_handler_past_its_timeout_waits_for_its_thread(
    registry: Registry,
) -> None:
    spans: list[tuple[int, float, float]] = []
    first_running = threading.Event()

    @registry.job(timeout=0.3, retry=Retry(max_attempts=2, backoff=0, jitter=False))
    def stubborn(ctx: Context) -> int:
        started = time.monotonic()
        if ctx.attempt == 1:  # ignores ctx.cancelled: runs well past its timeout
            first_running.set()
            time.sleep(1.5)
        spans.append((ctx.attempt, started, time.monotonic()))
        return ctx.attempt

    handle = await stubborn.enqueue()
    async with live_worker(registry, concurrency=4):
        # at the deadline the attempt is recorded timed out, while its thread still runs
        job = await wait_until(lambda: _first_attempt_ended(handle), timeout=10, interval=0.02)
        assert not spans, "attempt 1 was recorded timed out only once its thread returned"
        assert job.state is JobState.ACTIVE  # its retry waits for the thread
        assert job.attempts[0].error is not None
        assert "its thread went on running" in job.attempts[0].error.message
        assert await handle.result(timeout=10) == 2
    (first, _, end1), (second, start2, _) = sorted(spans)
    assert (first, second) == (1, 2)
    assert start2 >= end1, f"attempt 2 started {end1 - start2:.2f}s before attempt 1 returned"
    job = await handle.info()
    assert [a.outcome for a in job.attempts] == [AttemptOutcome.TIMED_OUT, AttemptOutcome.SUCCEEDED]


async def _first_attempt_ended(handle: object) -> object:
    job = await handle.info()  # type: ignore[attr-defined]
    if job.attempts and job.attempts[0].outcome is AttemptOutcome.TIMED_OUT:
        return job
    return None


async def test_async_handler_blocking_the_loop_past_its_lease_keeps_it(
    procapp: Registry, redis_url: str
) -> None:
    lease = ("--lease", "1", "--heartbeat", "0.3")
    blocker = start_worker(PROCAPP, redis_url, "--concurrency", "1", *lease)
    other = None
    try:
        handle = await procapp.get("block_loop").enqueue(3.0)
        await wait_until(lambda: _state_is(handle, JobState.ACTIVE), timeout=15, interval=0.02)
        # a second worker, free, reclaims any lease that expires
        other = start_worker(PROCAPP, redis_url, "--concurrency", "4", *lease)
        assert await handle.result(timeout=20) == 3.0
        job = await handle.info()
        assert [a.outcome for a in job.attempts] == [AttemptOutcome.SUCCEEDED]
    finally:
        stop_process(blocker)
        if other is not None:
            stop_process(other)
    _, out = finish(blocker)
    assert "the event loop is blocked" in out
    assert "the event loop is responsive again" in out


async def _state_is(handle: object, state: JobState) -> bool:
    return await handle.state() is state  # type: ignore[attr-defined,no-any-return]


async def test_a_reclaimed_job_runs_again_in_the_worker_still_running_its_old_attempt(
    registry: Registry, raw_redis: redis.Redis
) -> None:
    release = threading.Event()
    started: list[int] = []

    @registry.job(retry=Retry(max_attempts=3))
    def held(ctx: Context) -> int:
        started.append(ctx.attempt)
        if ctx.attempt == 1:
            release.wait(20)
        return ctx.attempt

    handle = await held.enqueue()
    store = registry.new_store()
    try:
        async with live_worker(registry, concurrency=2, lease=1.5) as worker:
            await wait_until(lambda: started == [1])
            # the lease is taken over as if it had expired (a worker cut off from Redis)
            raw_redis.zadd(Keys("jobmaster").queue("default").index("active"), {handle.id: 0})
            reclaim = await store.leases.reclaim("default", max_lost=5)
            assert reclaim.requeued == [handle.id]
            assert await handle.result(timeout=10) == 2  # run again, by the same worker
            assert started == [1, 2]
            # the old attempt's thread still runs: it holds its slot, apart from the new one
            await wait_until(lambda: _lease_lost_noticed(worker), timeout=5)
            assert len(worker._running) == 1
            release.set()
            await wait_until(lambda: not worker._running, timeout=5)
        job = await handle.info()
        assert job.state is JobState.SUCCEEDED
        assert [a.outcome for a in job.attempts] == [AttemptOutcome.LOST, AttemptOutcome.SUCCEEDED]
    finally:
        release.set()
        await store.close()


def _lease_lost_noticed(worker: object) -> bool:
    running = list(worker._running.values())  # type: ignore[attr-defined]
    return len(running) == 1 and running[0].lease_lost
