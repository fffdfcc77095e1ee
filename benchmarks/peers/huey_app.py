"""huey: a sync no-op task on ``RedisHuey`` (blocking dequeue), calling the task /
``task.map()``, a ``huey_consumer`` with one worker thread."""

from __future__ import annotations

import time
from collections.abc import Sequence

from huey import RedisHuey

from peers.common import Peer, batches, console_script, latency_loop, record, redis_url, time_calls

huey = RedisHuey("bench", url=redis_url())


@huey.task()
def noop(t: float) -> None:
    record(t)


def _connect() -> None:
    huey.storage.conn.ping()  # connects outside the timing


def enqueue_single(url: str, jobs: int) -> float:
    _connect()
    return time_calls(jobs, lambda: noop(0.0))


def enqueue_bulk(url: str, jobs: int, batch: int) -> float:
    _connect()
    started = time.perf_counter()
    for size in batches(jobs, batch):
        noop.map([0.0] * size)
    return time.perf_counter() - started


def worker_command(url: str, burst: bool) -> list[str]:
    command = [console_script("huey_consumer"), "peers.huey_app.huey"]
    return [*command, "--workers", "1", "--worker-type", "thread", "--quiet"]


def latency(url: str, gaps: Sequence[float]) -> list[float]:
    _connect()
    return latency_loop(url, gaps, noop)


PEER = Peer(
    name="huey",
    distributions=("huey",),
    enqueue_single=enqueue_single,
    enqueue_bulk=enqueue_bulk,
    bulk_method="task.map(args) (enqueues the tasks one by one)",
    worker_command=worker_command,
    burst=False,
    worker_settings="huey_consumer --workers 1 --worker-type thread",
    latency=latency,
)
