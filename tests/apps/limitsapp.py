"""An application for the flow-control tests: jobs with limits and unique keys, run by real
`jobmaster worker` processes."""

from __future__ import annotations

import asyncio
import time

from jobmaster import Context, RateLimited, Registry, Retry

registry = Registry()  # JOBMASTER_REDIS_URL is set by the test


@registry.job(queue="limited", max_running=2)
async def limited(n: int) -> int:
    await asyncio.sleep(0.3)
    return n


@registry.job(queue="limited", max_running=1, limit_key="{account}")
async def per_account(account: str, n: int) -> int:
    await asyncio.sleep(0.2)
    return n


@registry.job(queue="limited")
async def plain(n: int) -> int:
    return n


@registry.job(queue="paced", rate_limit="5/s")
async def paced(n: int) -> int:
    return n


@registry.job(queue="uniques", unique=True)
async def refresh(account: str) -> str:
    await asyncio.sleep(0.05)
    return account


@registry.job(queue="uniques", unique_key="report:{account}")
async def report(account: str, day: str) -> str:
    await asyncio.sleep(0.05)
    return f"{account} {day}"


@registry.job(queue="uniques", unique=True, unique_for=30)
async def debounced(account: str) -> str:
    return account


@registry.job(queue="upstream", retry=Retry(max_attempts=2, backoff=0))
async def calls_upstream(ctx: Context, refusals: int) -> int:
    if ctx.attempt <= refusals:  # the upstream API answers 429 this many times
        raise RateLimited(0.05)
    if ctx.attempt == refusals + 1:  # then fails once: its first try
        raise ValueError("upstream error")
    return ctx.attempt


@registry.job(queue="upstream", retry=Retry(max_attempts=2, backoff=0), executor="process")
def calls_upstream_in_a_process(refusals: int, marker: str) -> int:
    import pathlib

    path = pathlib.Path(marker)
    attempt = (int(path.read_text()) if path.exists() else 0) + 1
    path.write_text(str(attempt))
    if attempt <= refusals:
        raise RateLimited(0.05)
    if attempt == refusals + 1:
        raise ValueError("upstream error")
    return attempt


@registry.job(queue="hardware", resources={"gpu": 1, "mem": "1G"})
async def train(n: int) -> list[float]:
    started = time.time()  # the attempt's own span: its end is recorded a little later
    await asyncio.sleep(0.4)
    return [started, time.time()]


@registry.job(queue="hardware", resources={"cpu": 1})
async def crunch(n: int) -> list[float]:
    started = time.time()
    await asyncio.sleep(0.05)
    return [started, time.time()]


@registry.job(queue="hardware", resources={"gpu": 8})
async def too_big() -> None: ...
