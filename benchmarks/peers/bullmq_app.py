"""bullmq, the Python port of BullMQ (its Lua scripts, on redis-py): an async no-op processor,
``Queue.add`` / ``Queue.addBulk``, one ``Worker`` with concurrency=100 in a process of its own
(``python -m peers.bullmq_app``: the port has no worker command).

The worker keeps the last 1,000 completed and 5,000 failed jobs (``removeOnComplete`` /
``removeOnFail``), as BullMQ's guide advises for production; by default it keeps every
finished job forever.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from bullmq import Queue, Worker

from peers.common import (
    Peer,
    batches,
    latency_loop_async,
    record_async,
    redis_url,
    time_calls_async,
)

QUEUE = "bench"
NAME = "noop"
WORKER_OPTIONS: dict[str, Any] = {
    "concurrency": 100,  # default 1
    "removeOnComplete": {"count": 1000},
    "removeOnFail": {"count": 5000},
}


async def noop(job: Any, token: str) -> None:
    await record_async(float(job.data["t"]))


async def _queue(url: str) -> Queue:
    queue = Queue(QUEUE, {"connection": url})
    await queue.getWaitingCount()  # connects and loads the scripts outside the timing
    return queue


def enqueue_single(url: str, jobs: int) -> float:
    async def main() -> float:
        queue = await _queue(url)
        try:
            return await time_calls_async(jobs, lambda: queue.add(NAME, {"t": 0.0}))
        finally:
            await queue.close()

    return asyncio.run(main())


def enqueue_bulk(url: str, jobs: int, batch: int) -> float:
    async def main() -> float:
        queue = await _queue(url)
        try:
            started = time.perf_counter()
            for size in batches(jobs, batch):
                await queue.addBulk([{"name": NAME, "data": {"t": 0.0}} for _ in range(size)])
            return time.perf_counter() - started
        finally:
            await queue.close()

    return asyncio.run(main())


def worker_command(url: str, burst: bool) -> list[str]:
    return [sys.executable, "-m", "peers.bullmq_app"]


def latency(url: str, gaps: Sequence[float]) -> list[float]:
    async def main() -> list[float]:
        queue = await _queue(url)
        try:
            return await latency_loop_async(url, gaps, lambda t: queue.add(NAME, {"t": t}))
        finally:
            await queue.close()

    return asyncio.run(main())


PEER = Peer(
    name="bullmq",
    distributions=("bullmq",),
    enqueue_single=enqueue_single,
    enqueue_bulk=enqueue_bulk,
    bulk_method="Queue.addBulk (one MULTI pipeline of addStandardJob scripts per call)",
    worker_command=worker_command,
    burst=False,
    worker_settings=(
        "one Worker, concurrency=100, removeOnComplete 1000, removeOnFail 5000 "
        "(no burst mode: stopped by SIGTERM)"
    ),
    latency=latency,
)


async def run_worker() -> None:
    """One worker until SIGTERM or SIGINT, then a graceful close."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    worker = Worker(QUEUE, noop, {"connection": redis_url(), **WORKER_OPTIONS})
    await stopping.wait()
    await worker.close()


if __name__ == "__main__":
    asyncio.run(run_worker())
