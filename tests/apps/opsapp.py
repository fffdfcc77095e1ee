"""The application of the operations tests' worker processes (metrics, webhooks)."""

from __future__ import annotations

from jobmaster import Context, Registry, Retry

registry = Registry()  # JOBMASTER_REDIS_URL is set by the test


@registry.job(queue="ops")
async def double(n: int) -> int:
    return 2 * n


@registry.job(queue="ops", retry=Retry(max_attempts=1))
async def explode(message: str) -> None:
    raise RuntimeError(message)


@registry.job(queue="ops", retry=Retry(max_attempts=2, backoff=0, jitter=False))
async def flaky(ctx: Context) -> str:
    if ctx.attempt == 1:
        raise RuntimeError("the first attempt fails")
    return "second time lucky"
