"""jobmaster: an async no-op job, ``enqueue_sync`` / ``enqueue_many``, a ``jobmaster worker``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from jobmaster import Registry
from peers.common import (
    Peer,
    console_script,
    latency_loop,
    record_async,
    redis_url,
    time_calls,
)

QUEUE = "bench"

registry = Registry(redis_url(), namespace="bench")


@registry.job(queue=QUEUE)
async def noop(t: float) -> None:
    await record_async(t)


def enqueue_single(url: str, jobs: int) -> float:
    # enqueue_sync: one blocking round trip on the calling thread (no event loop involved)
    noop.options(queue="warm-up").enqueue_sync(0.0)  # connects outside the timing
    try:
        return time_calls(jobs, lambda: noop.enqueue_sync(0.0))
    finally:
        registry.close()


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


def latency(url: str, gaps: Sequence[float]) -> list[float]:
    try:
        return latency_loop(url, gaps, noop.enqueue_sync)
    finally:
        registry.close()


PEER = Peer(
    name="jobmaster",
    distributions=("jobmaster",),
    enqueue_single=enqueue_single,
    enqueue_bulk=enqueue_bulk,
    bulk_method="enqueue_many (one script call per 1000 jobs); one at a time: enqueue_sync",
    worker_command=worker_command,
    burst=True,
    worker_settings="jobmaster worker --burst, default concurrency (100)",
    latency=latency,
)
