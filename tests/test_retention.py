"""What jobmaster forgets and when: delivered stream entries, finished jobs past their
retention, results past their time to live, old events."""

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis

from jobmaster import (
    Context,
    JobHandle,
    JobNotFound,
    JobState,
    Registry,
    ResultExpired,
    Retry,
    RetryLater,
)
from jobmaster.testing import run_jobs
from tests.conftest import wait_until

NS = "jobmaster:{default}"
STREAMS = [f"{NS}:stream:{band}" for band in range(10)]
PER_JOB_HASHES = ("jobs", "status", "results")
PER_ATTEMPT_HASHES = ("attempts", "logs", "progress")
INDEXES = ("queued", "scheduled", "active", "succeeded", "failed", "cancelled")


@contextlib.asynccontextmanager
async def own_registry(
    redis_url: str, tmp_path: Path, **settings: object
) -> AsyncIterator[Registry]:
    """A registry with its own settings on the test Redis, closed at the end."""
    environ = {f"JOBMASTER_{k.upper()}": str(v) for k, v in settings.items()}
    registry = Registry(redis_url, config_dir=tmp_path, environ=environ)
    try:
        yield registry
    finally:
        await registry.aclose()


def traces(raw_redis: redis.Redis, job_id: str, attempts: int) -> list[str]:
    """Every place a job is still recorded in Redis."""
    found = [name for name in PER_JOB_HASHES if raw_redis.hexists(f"{NS}:{name}", job_id)]
    for name in PER_ATTEMPT_HASHES:
        for n in range(1, attempts + 1):
            if raw_redis.hexists(f"{NS}:{name}", f"{job_id}:{n}"):
                found.append(f"{name}[{n}]")
    found += [name for name in INDEXES if raw_redis.zscore(f"{NS}:{name}", job_id) is not None]
    if raw_redis.zscore(f"{NS}:result_expiry", job_id) is not None:
        found.append("result_expiry")
    return found


async def test_delivered_stream_entries_are_deleted(
    registry: Registry, raw_redis: redis.Redis
) -> None:
    @registry.job(retry=Retry(max_attempts=2, backoff=0.01))
    def work(ctx: Context, kind: str) -> str:
        if kind == "fail":
            raise ValueError("always")
        if kind == "later" and ctx.attempt == 1:
            raise RetryLater(0.01)
        return kind

    handles = []
    for priority, kind in [(0, "ok"), (3, "fail"), (5, "later"), (9, "ok"), (0, "fail")]:
        handles.append(await work.options(priority=priority).enqueue(kind))
    assert sum(raw_redis.xlen(s) for s in STREAMS if raw_redis.exists(s)) == 5
    await run_jobs(registry)
    states = [(await h.info()).state for h in handles]
    assert states == [
        JobState.SUCCEEDED,
        JobState.FAILED,
        JobState.SUCCEEDED,
        JobState.SUCCEEDED,
        JobState.FAILED,
    ]
    for stream in STREAMS:
        if raw_redis.exists(stream):
            assert raw_redis.xlen(stream) == 0, stream
            assert raw_redis.xpending(stream, "workers")["pending"] == 0, stream


async def test_finished_jobs_are_pruned_after_the_retention(
    redis_url: str, raw_redis: redis.Redis, tmp_path: Path
) -> None:
    async with own_registry(redis_url, tmp_path, retention=1) as registry:

        @registry.job(retry=Retry(max_attempts=2, backoff=0.01))
        def work(ctx: Context, n: int) -> int:
            ctx.log.info("working", n=n)
            ctx.progress(0.5)
            if n < 0:
                raise ValueError("negative")
            return n

        first = [await work.enqueue(1), await work.enqueue(-1)]
        attempts = {first[0].id: 1, first[1].id: 2}
        await run_jobs(registry)
        for handle in first:
            assert traces(raw_redis, handle.id, attempts[handle.id]), handle

        # A later batch within the retention prunes nothing.
        await work.enqueue(2)
        await run_jobs(registry)
        assert traces(raw_redis, first[0].id, 1) == [
            "jobs",
            "status",
            "results",
            "attempts[1]",
            "logs[1]",
            "progress[1]",
            "succeeded",
        ]
        assert traces(raw_redis, first[1].id, 2) == [
            "jobs",
            "status",
            "attempts[1]",
            "attempts[2]",
            "logs[1]",
            "logs[2]",
            "progress[1]",
            "progress[2]",
            "failed",
        ]

        latest: list[JobHandle[int]] = []

        async def a_later_batch_pruned_the_first() -> bool:
            latest.append(await work.enqueue(3))
            await run_jobs(registry)
            return not any(traces(raw_redis, h.id, attempts[h.id]) for h in first)

        await wait_until(a_later_batch_pruned_the_first, timeout=10, interval=0.1)
        for handle in first:
            with pytest.raises(JobNotFound):
                await handle.info()
            with pytest.raises(JobNotFound):
                await registry.find(handle.id)
        listed = {s.id for s in await registry.list_jobs("default", JobState.SUCCEEDED)}
        listed |= {s.id for s in await registry.list_jobs("default", JobState.FAILED)}
        assert not listed & {h.id for h in first}
        # The batch that did the pruning is itself kept.
        assert await latest[-1].result(timeout=5) == 3


async def test_result_ttl_shorter_than_the_retention(registry: Registry) -> None:
    @registry.job(result_ttl=2)  # long enough to read it once on a loaded machine
    async def short_lived(n: int) -> int:
        return n

    @registry.job()
    async def kept(n: int) -> int:
        return n

    handle = await short_lived.enqueue(5)
    control = await kept.enqueue(6)
    await run_jobs(registry)
    assert await handle.result(timeout=5) == 5  # within its time to live

    async def expired_after_a_later_batch() -> bool:
        await kept.enqueue(0)
        await run_jobs(registry)
        try:
            await handle.result(timeout=5)
        except ResultExpired:
            return True
        return False

    await wait_until(expired_after_a_later_batch, timeout=15, interval=0.2)
    job = await handle.info()  # the job itself is still there
    assert job.state is JobState.SUCCEEDED
    assert job.result is None
    assert len(job.attempts) == 1
    assert await control.result(timeout=5) == 6  # no result_ttl: kept with the job


async def test_events_stream_is_capped(
    redis_url: str, raw_redis: redis.Redis, tmp_path: Path
) -> None:
    maxlen = 100
    async with own_registry(redis_url, tmp_path, events_maxlen=maxlen) as registry:

        @registry.job()
        async def noop(n: int) -> int:
            return n

        for n in range(6 * maxlen):  # one events entry per enqueue call
            await noop.enqueue(n)
        length = raw_redis.xlen(f"{NS}:events")
        # XADD MAXLEN ~ trims whole radix-tree nodes (100 entries by default).
        assert maxlen <= length <= 2 * maxlen
        await run_jobs(registry)
        length = raw_redis.xlen(f"{NS}:events")
        assert maxlen <= length <= 2 * maxlen
