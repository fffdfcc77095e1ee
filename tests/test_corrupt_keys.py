"""A corrupt key costs only its own job: statuses that cannot be read, streams that cannot be
read or whose consumer group is gone."""

from __future__ import annotations

import asyncio
from typing import Any

import redis
import structlog

from jobmaster import AttemptOutcome, JobHandle, JobState, Registry
from jobmaster.keys import Keys
from jobmaster.record_codec import STATUS
from jobmaster.testing import run_jobs
from tests.conftest import live_worker, wait_until

QUEUE = Keys("jobmaster").queue("default")


async def test_a_corrupt_status_fails_its_job_and_the_rest_of_the_claimed_batch_runs(
    registry: Registry, raw_redis: redis.Redis
) -> None:
    @registry.job()
    async def double(n: int) -> int:
        return 2 * n

    handles = [await double.enqueue(n) for n in range(6)]
    bad = handles[2]
    unreadable = '{"a":0,"b":0,"s":"queued","e":'  # cut short
    raw_redis.hset(QUEUE.status, bad.id, unreadable)

    await run_jobs(registry, timeout=10)

    assert [await h.result(timeout=1) for h in handles if h is not bad] == [0, 2, 6, 8, 10]
    job = await bad.info()
    assert job.state is JobState.FAILED
    assert job.error is not None
    assert job.error.type == "CorruptStatus"
    assert "could not be read" in job.error.message
    # nothing is lost: the unreadable status is kept, and the job runs again when retried
    assert STATUS.decode(raw_redis.hget(QUEUE.status, bad.id) or b"")["raw"] == unreadable
    assert await bad.retry() is JobState.QUEUED
    await run_jobs(registry, timeout=10)
    assert await bad.result(timeout=1) == 4


async def test_a_corrupt_status_of_a_running_job_does_not_hold_back_other_completions(
    registry: Registry, raw_redis: redis.Redis
) -> None:
    release = asyncio.Event()

    @registry.job()
    async def held(n: int) -> int:
        await release.wait()
        return n

    handles = [await held.enqueue(n) for n in range(4)]
    with structlog.testing.capture_logs() as logs:
        async with live_worker(registry, lease=30) as worker:
            await wait_until(lambda: len(worker._running) == 4, timeout=5)
            raw_redis.hset(QUEUE.status, handles[0].id, b"[1, 2")
            release.set()
            assert [await h.result(timeout=5) for h in handles[1:]] == [1, 2, 3]
            later = await held.enqueue(9)  # completions keep being written
            assert await later.result(timeout=5) == 9
    job = await handles[0].info()
    assert job.state is JobState.FAILED
    assert job.error is not None
    assert job.error.type == "CorruptStatus"
    said = [e for e in logs if e["log_level"] == "error" and "could not be read" in e["event"]]
    assert [e["job_id"] for e in said] == [handles[0].id]


async def test_a_missing_consumer_group_is_created_again(
    registry: Registry, raw_redis: redis.Redis
) -> None:
    @registry.job()
    async def echo(n: int) -> int:
        return n

    async with live_worker(registry) as worker:
        await wait_until(lambda: worker._fetch_task is not None, timeout=5)
        raw_redis.xgroup_destroy(QUEUE.stream(0), "workers")  # under a running worker
        handle = await echo.enqueue(1)
        assert await handle.result(timeout=5) == 1


async def test_a_stream_of_the_wrong_type_is_reported_and_the_other_bands_still_run(
    registry: Registry, raw_redis: redis.Redis
) -> None:
    @registry.job()
    async def echo(n: int) -> int:
        return n

    with structlog.testing.capture_logs() as logs:
        async with live_worker(registry) as worker:
            await wait_until(lambda: worker._fetch_task is not None, timeout=5)
            raw_redis.set(QUEUE.stream(9), b"not a stream")  # read first: the highest band
            handle = await echo.enqueue(1)
            assert await handle.result(timeout=5) == 1
    said = [e for e in logs if e["log_level"] == "error" and "could not be read" in e["event"]]
    assert said
    assert "WRONGTYPE" in said[0]["error"]
    assert QUEUE.stream(9) in said[0]["error"]


async def test_a_completion_redis_refuses_is_recorded_as_a_failure_and_the_others_are_written(
    registry: Registry, raw_redis: redis.Redis
) -> None:
    @registry.job()
    async def big() -> str:
        return "x" * 2_000_000  # over the server's limit on one value, set below

    @registry.job()
    async def small(n: int) -> int:
        return n

    limit = raw_redis.config_get("proto-max-bulk-len")["proto-max-bulk-len"]
    raw_redis.config_set("proto-max-bulk-len", "1mb")
    try:
        refused = await big.enqueue()
        handles = [await small.enqueue(n) for n in range(3)]
        with structlog.testing.capture_logs() as logs:
            async with live_worker(registry, lease=30):
                assert [await h.result(timeout=5) for h in handles] == [0, 1, 2]
                await wait_until(lambda: _failed(refused), timeout=5)
                later = await small.enqueue(9)  # completions keep being written
                assert await later.result(timeout=5) == 9
    finally:
        raw_redis.config_set("proto-max-bulk-len", limit)
    job = await refused.info()
    assert job.error is not None
    assert job.error.type == "UnrecordableEnd"
    assert "Protocol error" in job.error.message
    assert [a.outcome for a in job.attempts] == [AttemptOutcome.FAILED]
    said = [e for e in logs if e["log_level"] == "error" and "refused" in e["event"]]
    assert [e["job_id"] for e in said] == [refused.id]


async def _failed(handle: JobHandle[Any]) -> bool:
    return await handle.state() is JobState.FAILED


async def test_an_attempt_record_that_cannot_be_read_does_not_stop_its_end(
    registry: Registry, raw_redis: redis.Redis
) -> None:
    release = asyncio.Event()

    @registry.job()
    async def held(n: int) -> int:
        await release.wait()
        return n

    handles = [await held.enqueue(n) for n in range(3)]
    async with live_worker(registry, lease=30) as worker:
        await wait_until(lambda: len(worker._running) == 3, timeout=5)
        raw_redis.hset(QUEUE.attempts, f"{handles[0].id}:1", b"\xff not JSON")
        release.set()
        assert [await h.result(timeout=5) for h in handles] == [0, 1, 2]
    job = await handles[0].info()
    assert job is not None
    [attempt] = job.attempts
    assert (attempt.number, attempt.outcome) == (1, AttemptOutcome.SUCCEEDED)
    assert attempt.finished_at is not None
    # the unreadable record is kept as it was: the end is a record of its own
    assert raw_redis.hget(QUEUE.attempts, f"{handles[0].id}:1") == b"\xff not JSON"


async def test_a_queue_whose_claim_fails_does_not_stop_the_other_queues(
    registry: Registry, raw_redis: redis.Redis
) -> None:
    @registry.job(queue="other")
    async def echo(n: int) -> int:
        return n

    broken = Keys("jobmaster").queue("broken")
    with structlog.testing.capture_logs() as logs:
        async with live_worker(registry, queues=["broken", "other"]) as worker:
            await wait_until(lambda: worker._fetch_task is not None, timeout=5)
            raw_redis.set(broken.stream(9), b"not a stream")  # the first queue claimed
            handle = await echo.enqueue(1)
            assert await handle.result(timeout=5) == 1
    said = [e for e in logs if e["log_level"] == "error" and e.get("queue") == "broken"]
    assert said
    assert "WRONGTYPE" in said[0]["error"]
