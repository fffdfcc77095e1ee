"""saq: an async no-op job, ``Queue.enqueue``, a ``saq`` worker with concurrency=100."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from saq import Queue

from peers.common import (
    Peer,
    console_script,
    latency_loop_async,
    record_async,
    redis_url,
    time_calls_async,
)

QUEUE = "bench"


async def noop(ctx: dict[str, Any], *, t: float) -> None:
    await record_async(t)


settings = {
    "queue": Queue.from_url(redis_url(), name=QUEUE),
    "functions": [noop],
    "concurrency": 100,  # default 10
}
"""Read by ``saq peers.saq_app.settings``."""


async def _queue(url: str) -> Queue:
    queue = Queue.from_url(url, name=QUEUE)
    await queue.connect()
    return queue


def enqueue_single(url: str, jobs: int) -> float:
    async def main() -> float:
        queue = await _queue(url)
        try:
            await queue.count("queued")  # connects outside the timing
            return await time_calls_async(jobs, lambda: queue.enqueue("noop", t=0.0))
        finally:
            await queue.disconnect()

    return asyncio.run(main())


def worker_command(url: str, burst: bool) -> list[str]:
    return [console_script("saq"), "peers.saq_app.settings", "--workers", "1"]


def latency(url: str, gaps: Sequence[float]) -> list[float]:
    async def main() -> list[float]:
        queue = await _queue(url)
        try:
            return await latency_loop_async(url, gaps, lambda t: queue.enqueue("noop", t=t))
        finally:
            await queue.disconnect()

    return asyncio.run(main())


PEER = Peer(
    name="saq",
    distributions=("saq",),
    enqueue_single=enqueue_single,
    enqueue_bulk=None,
    bulk_method="n/a: saq has no bulk enqueue (Queue.map enqueues one by one and waits)",
    worker_command=worker_command,
    burst=False,
    worker_settings="saq --workers 1, concurrency=100",
    latency=latency,
)
