"""arq: an async no-op job, ``ArqRedis.enqueue_job``, an ``arq`` worker with max_jobs=100."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings

from peers.common import (
    Peer,
    console_script,
    latency_loop_async,
    record_async,
    redis_url,
    time_calls_async,
)


async def noop(ctx: dict[str, Any], t: float) -> None:
    await record_async(t)


class WorkerSettings:
    """Read by ``arq peers.arq_app.WorkerSettings``."""

    functions = [noop]
    redis_settings = RedisSettings.from_dsn(redis_url())
    max_jobs = 100  # default 10


LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"level": "WARNING", "class": "logging.StreamHandler"}},
    "loggers": {"arq": {"handlers": ["stderr"], "level": "WARNING"}},
}
"""arq's own log configuration at WARNING instead of INFO (which logs two lines per job)."""


def enqueue_single(url: str, jobs: int) -> float:
    async def main() -> float:
        pool = await create_pool(RedisSettings.from_dsn(url))
        try:
            await pool.ping()
            return await time_calls_async(jobs, lambda: pool.enqueue_job("noop", 0.0))
        finally:
            await pool.aclose()

    return asyncio.run(main())


def worker_command(url: str, burst: bool) -> list[str]:
    command = [console_script("arq"), "peers.arq_app.WorkerSettings"]
    command += ["--custom-log-dict", "peers.arq_app.LOGGING"]
    return [*command, "--burst" if burst else "--no-burst"]


def latency(url: str, gaps: Sequence[float]) -> list[float]:
    async def main() -> list[float]:
        pool = await create_pool(RedisSettings.from_dsn(url))
        try:
            return await latency_loop_async(url, gaps, lambda t: pool.enqueue_job("noop", t))
        finally:
            await pool.aclose()

    return asyncio.run(main())


PEER = Peer(
    name="arq",
    distributions=("arq",),
    enqueue_single=enqueue_single,
    enqueue_bulk=None,
    bulk_method="n/a: arq has no bulk enqueue (enqueue_job only)",
    worker_command=worker_command,
    burst=True,
    worker_settings="arq --burst, max_jobs=100, poll_delay=0.5 s (default: arq polls its queue)",
    latency=latency,
)
