"""The demo application: a few jobs that succeed, retry, fail and time out."""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel

from jobmaster import Context, Registry, Retry

registry = Registry()  # $JOBMASTER_REDIS_URL, else redis://127.0.0.1:6379/0


class Image(BaseModel):
    path: str
    width: int
    height: int


@registry.job(retry=Retry(max_attempts=3, backoff=0.1))
async def add(a: int, b: int) -> int:
    return a + b


@registry.job(queue="default", priority=5)
def thumbnail(ctx: Context, image: Image, size: int = 128) -> str:
    """A sync handler (runs in a thread) that logs and reports progress."""
    ctx.log.info("resizing", path=image.path, size=size)
    for step in range(1, 4):
        time.sleep(0.02)
        ctx.progress(step / 3)
    ctx.log.info("done", output=f"{image.path}.thumb")
    return f"{image.path}.thumb"


@registry.job(retry=Retry(max_attempts=3, backoff=0.1, jitter=False))
async def flaky(ctx: Context, n: int) -> str:
    """Fails on its first attempt, succeeds on the second."""
    if ctx.attempt == 1:
        ctx.log.warning("upstream not ready", attempt=ctx.attempt)
        raise ConnectionError("upstream not ready")
    return f"ok after {ctx.attempt} attempts"


@registry.job(retry=Retry(max_attempts=2, backoff=0.1))
def broken(name: str) -> None:
    raise ValueError(f"cannot process {name!r}")


@registry.job(timeout=0.3, retry=Retry(max_attempts=1))
async def slow() -> None:
    await asyncio.sleep(10)
