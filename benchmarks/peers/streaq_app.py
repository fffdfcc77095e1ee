"""streaq (on coredis, not redis-py): an async no-op task, ``task.enqueue()`` /
``Worker.enqueue_many``, a ``streaq run`` worker with concurrency=100.

The task is ``silent`` (streaq logs two INFO lines per task otherwise, and its command has no
log level: the other libraries log at WARNING).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from streaq import Worker

from peers.common import (
    Peer,
    batches,
    console_script,
    latency_loop_async,
    record_async,
    redis_url,
    time_calls_async,
)

worker = Worker(redis_url=redis_url(), queue_name="bench", concurrency=100)  # default 16


@worker.task(silent=True)
async def noop(t: float) -> None:
    await record_async(t)


def enqueue_single(url: str, jobs: int) -> float:
    async def main() -> float:
        async with worker:  # connects and loads streaq's Redis functions outside the timing
            return await time_calls_async(jobs, lambda: noop.enqueue(0.0))

    return asyncio.run(main())


def enqueue_bulk(url: str, jobs: int, batch: int) -> float:
    async def main() -> float:
        async with worker:
            started = time.perf_counter()
            for size in batches(jobs, batch):
                await worker.enqueue_many([noop.enqueue(0.0) for _ in range(size)])
            return time.perf_counter() - started

    return asyncio.run(main())


def worker_command(url: str, burst: bool) -> list[str]:
    command = [console_script("streaq"), "run", "peers.streaq_app:worker"]
    return [*command, "--burst"] if burst else command


def latency(url: str, gaps: Sequence[float]) -> list[float]:
    async def main() -> list[float]:
        async with worker:
            return await latency_loop_async(url, gaps, noop.enqueue)

    return asyncio.run(main())


PEER = Peer(
    name="streaq",
    distributions=("streaq", "coredis"),
    enqueue_single=enqueue_single,
    enqueue_bulk=enqueue_bulk,
    bulk_method="Worker.enqueue_many (one pipeline of publish_task calls per call)",
    worker_command=worker_command,
    burst=True,
    worker_settings="streaq run --burst, concurrency=100, silent task",
    latency=latency,
)
