"""An application for tests that run real `jobmaster worker` processes."""

from __future__ import annotations

import asyncio
import time

from jobmaster import Context, Registry, Retry

registry = Registry()  # JOBMASTER_REDIS_URL is set by the test


@registry.job()
async def add(a: int, b: int) -> int:
    return a + b


@registry.job(retry=Retry(max_attempts=1))
async def sleepy(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@registry.job(retry=Retry(max_attempts=1))
def sync_sleepy(ctx: Context, seconds: float) -> float:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ctx.cancelled.is_set():
            raise RuntimeError("cancelled")
        time.sleep(0.01)
    return seconds


@registry.job(retry=Retry(max_attempts=1))
def explode(message: str) -> None:
    raise ValueError(message)
