"""jobmaster: an async no-op job, ``enqueue`` / ``enqueue_many``, a ``jobmaster worker``."""

from __future__ import annotations

import asyncio
import time

from jobmaster import Registry
from peers.common import (
    Peer,
    console_script,
    latency_loop_async,
    record_async,
    redis_url,
    time_calls_async,
)

QUEUE = "bench"

registry = Registry(redis_url(), namespace="bench")


@registry.job(queue=QUEUE)
async def noop(t: float) -> None:
    await record_async(t)


def enqueue_single(url: str, jobs: int) -> float:
    async def main() -> float:
        async with registry:
            await registry.count_jobs(QUEUE)  # connects outside the timing
            return await time_calls_async(jobs, lambda: noop.enqueue(0.0))

    return asyncio.run(main())


def enqueue_bulk(url: str, jobs: int, batch: int) -> float:
    async def main() -> float:
        async with registry:
            await registry.count_jobs(QUEUE)
            started = time.perf_counter()
            for first in range(0, jobs, batch):
                await noop.enqueue_many([(0.0,)] * min(batch, jobs - first))
            return time.perf_counter() - started

    return asyncio.run(main())


def worker_command(url: str, burst: bool) -> list[str]:
    command = [console_script("jobmaster"), "--log-level", "warning", "worker"]
    command.append("peers.jobmaster_app:registry")
    return [*command, "--burst"] if burst else command


def latency(url: str, samples: int) -> list[float]:
    async def main() -> list[float]:
        async with registry:
            return await latency_loop_async(url, samples, noop.enqueue)

    return asyncio.run(main())


PEER = Peer(
    name="jobmaster",
    distributions=("jobmaster",),
    enqueue_single=enqueue_single,
    enqueue_bulk=enqueue_bulk,
    bulk_method="enqueue_many (one pipelined batch per call)",
    worker_command=worker_command,
    burst=True,
    worker_settings="jobmaster worker --burst, default concurrency (100)",
    latency=latency,
)
