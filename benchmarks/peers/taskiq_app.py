"""taskiq with taskiq-redis: an async no-op task on ``RedisStreamBroker``, ``kiq``, a
``taskiq worker`` process with 100 concurrent tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from taskiq_redis import RedisStreamBroker

from peers.common import (
    Peer,
    console_script,
    latency_loop_async,
    record_async,
    redis_url,
    time_calls_async,
)

broker = RedisStreamBroker(redis_url(), queue_name="bench")


@broker.task
async def noop(t: float) -> None:
    await record_async(t)


def enqueue_single(url: str, jobs: int) -> float:
    async def main() -> float:
        # startup() also creates the consumer group, which reads from "$": it must exist
        # before the jobs are sent for a worker started later to see them.
        await broker.startup()
        try:
            return await time_calls_async(jobs, lambda: noop.kiq(0.0))
        finally:
            await broker.shutdown()

    return asyncio.run(main())


def worker_command(url: str, burst: bool) -> list[str]:
    command = [console_script("taskiq"), "worker", "peers.taskiq_app:broker", "--workers", "1"]
    return [*command, "--max-async-tasks", "100", "--log-level", "WARNING"]


def latency(url: str, gaps: Sequence[float]) -> list[float]:
    async def main() -> list[float]:
        await broker.startup()
        try:
            return await latency_loop_async(url, gaps, noop.kiq)
        finally:
            await broker.shutdown()

    return asyncio.run(main())


PEER = Peer(
    name="taskiq",
    distributions=("taskiq", "taskiq-redis"),
    enqueue_single=enqueue_single,
    enqueue_bulk=None,
    bulk_method="n/a: taskiq has no bulk kiq",
    worker_command=worker_command,
    burst=False,
    worker_settings="taskiq worker --workers 1 --max-async-tasks 100, RedisStreamBroker",
    latency=latency,
)
