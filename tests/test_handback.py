"""Jobs handed back at shutdown keep their retry budget."""

from __future__ import annotations

import asyncio

from jobmaster import AttemptOutcome, Context, Registry, Retry
from jobmaster.testing import run_jobs
from tests.conftest import live_worker, wait_until


async def test_a_hand_back_at_shutdown_does_not_use_up_a_try(registry: Registry) -> None:
    @registry.job(retry=Retry(max_attempts=2, backoff=0))
    async def flaky(ctx: Context) -> int:
        if ctx.attempt == 1:
            await asyncio.sleep(30)  # still running at shutdown: handed back
        if ctx.attempt == 2:
            raise ValueError("the first real failure")
        return ctx.attempt

    handle = await flaky.enqueue()
    async with live_worker(registry, grace=0) as worker:
        await wait_until(lambda: worker._running, timeout=5)

    await run_jobs(registry, timeout=10)
    assert await handle.result(timeout=1) == 3
    job = await handle.info()
    assert [a.outcome for a in job.attempts] == [
        AttemptOutcome.LOST,
        AttemptOutcome.FAILED,
        AttemptOutcome.SUCCEEDED,
    ]
    assert job.attempts[0].error is not None
    assert job.attempts[0].error.type == "WorkerShutdown"
