"""jobmaster.testing: run a registry's jobs in-process, on real Redis or on fakeredis."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobmaster import Context, JobFailed, JobState, Registry, Retry
from jobmaster.testing import embedded_redis, fake_registry, run_jobs, run_jobs_sync


def declare(registry: Registry) -> None:
    @registry.job()
    async def add(a: int, b: int) -> int:
        return a + b

    @registry.job(retry=Retry(max_attempts=2, backoff=0.05))
    def shout(ctx: Context, word: str) -> str:
        ctx.log.info("shouting", word=word)
        if ctx.attempt == 1:
            raise RuntimeError("first try fails")
        return word.upper()


async def test_run_jobs_drains_queued_and_retried_jobs(registry: Registry) -> None:
    declare(registry)
    add = await registry.enqueue("add", {"a": 1, "b": 2})
    shout = await registry.enqueue("shout", ["hi"])
    ran = await run_jobs(registry)
    assert ran == 3  # add, and shout twice
    assert await add.result() == 3
    assert await shout.result() == "HI"
    counts = await registry.count_jobs("default")
    assert counts[JobState.SUCCEEDED] == 2
    assert counts[JobState.SCHEDULED] == counts[JobState.QUEUED] == 0


async def test_run_jobs_can_leave_scheduled_jobs_alone(registry: Registry) -> None:
    declare(registry)
    later = await registry.enqueue("add", [1, 1], delay=60)
    assert await run_jobs(registry, include_scheduled=False) == 0
    assert await later.state() is JobState.SCHEDULED


def test_run_jobs_sync_from_plain_test(tmp_path: Path) -> None:
    with embedded_redis() as url:
        registry = Registry(url, config_dir=tmp_path, environ={})
        declare(registry)
        handle = registry.get("add").enqueue_sync(2, 3)
        assert run_jobs_sync(registry) == 1
        assert handle.result_sync(timeout=1) == 5
        registry.close()


async def test_fake_registry_runs_jobs_without_a_server(tmp_path: Path) -> None:
    registry = fake_registry(Registry(config_dir=tmp_path, environ={}))
    declare(registry)

    @registry.job(retry=Retry(max_attempts=1))
    async def fail() -> None:
        raise ValueError("nope")

    ok = await registry.enqueue("shout", ["fake"])
    bad = await fail.enqueue()
    await run_jobs(registry)
    assert await ok.result(timeout=1) == "FAKE"
    job = await ok.info()
    assert [a.outcome for a in job.attempts] == ["failed", "succeeded"]
    assert job.attempts[1].logs[0].event == "shouting"
    with pytest.raises(JobFailed, match="ValueError: nope"):
        await bad.result(timeout=1)
    await registry.aclose()
