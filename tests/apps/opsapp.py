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


@registry.job(queue="ops", timeout=60)
def chatty(ctx: Context, gate: str) -> str:
    """Logs a line, waits (in its thread) until the file ``gate`` exists, logs another."""
    import time
    from pathlib import Path

    ctx.log.info("first line", step=1)
    deadline = time.monotonic() + 30
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    ctx.log.warning("second line", step=2)
    return "done"
