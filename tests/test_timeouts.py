"""timeout= and idle_timeout=: attempts that run too long, or make no progress, end timed_out."""

from __future__ import annotations

import asyncio
import time

from jobmaster import AttemptOutcome, Context, JobState, Registry, Retry
from jobmaster.testing import run_jobs


async def test_idle_async_attempt_is_ended_and_retried(registry: Registry) -> None:
    @registry.job(idle_timeout=0.2, retry=Retry(max_attempts=2, backoff=0))
    async def stuck(ctx: Context) -> str:
        if ctx.attempt == 1:
            await asyncio.sleep(30)  # no progress at all
        return "second try"

    handle = await stuck.enqueue()
    await run_jobs(registry, timeout=10)
    job = await handle.info()
    assert job.state is JobState.SUCCEEDED
    first = job.attempts[0]
    assert first.outcome is AttemptOutcome.TIMED_OUT
    assert first.error is not None
    assert first.error.type == "IdleTimeout"
    assert first.finished_at is not None
    assert (first.finished_at - first.started_at).total_seconds() < 5


async def test_heartbeats_and_log_lines_keep_an_attempt_alive(registry: Registry) -> None:
    @registry.job(idle_timeout=0.3, retry=Retry(max_attempts=1))
    async def busy(ctx: Context) -> int:
        for step in range(8):  # 0.8 s in all, well past the idle timeout
            await asyncio.sleep(0.1)
            if step % 2:
                ctx.heartbeat()
            else:
                ctx.log.info("step", n=step)
        return 8

    handle = await busy.enqueue()
    await run_jobs(registry, timeout=10)
    assert await handle.result(timeout=1) == 8


async def test_idle_sync_attempt_is_ended_and_told_to_stop(registry: Registry) -> None:
    seen_cancel = []

    @registry.job(idle_timeout=0.2, retry=Retry(max_attempts=1))
    def spin(ctx: Context) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not ctx.cancelled.is_set():
            time.sleep(0.01)
        seen_cancel.append(ctx.cancelled.is_set())

    handle = await spin.enqueue()
    await run_jobs(registry, timeout=10)
    job = await handle.info()
    assert job.state is JobState.FAILED
    assert job.attempts[0].outcome is AttemptOutcome.TIMED_OUT
    assert job.error is not None
    assert job.error.type == "IdleTimeout"
    await asyncio.to_thread(_wait_for, seen_cancel)
    assert seen_cancel == [True]


def _wait_for(items: list[bool]) -> None:
    deadline = time.monotonic() + 5
    while not items and time.monotonic() < deadline:
        time.sleep(0.01)


async def test_hard_timeout_ends_an_attempt_that_keeps_reporting_progress(
    registry: Registry,
) -> None:
    @registry.job(timeout=0.3, idle_timeout=5, retry=Retry(max_attempts=1))
    async def chatty(ctx: Context) -> None:
        while True:
            ctx.progress("still going")
            await asyncio.sleep(0.05)

    handle = await chatty.enqueue()
    await run_jobs(registry, timeout=10)
    job = await handle.info()
    assert job.attempts[0].outcome is AttemptOutcome.TIMED_OUT
    assert job.error is not None
    assert job.error.type == "AttemptTimeout"
    assert job.attempts[0].progress == "still going"
