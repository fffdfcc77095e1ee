"""dramatiq: a sync no-op actor on ``RedisBroker``, ``send`` / ``group(...).run()``, a
``dramatiq`` worker with one process of 8 threads (the default thread count)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from peers.common import (
    Peer,
    batches,
    console_script,
    latency_loop,
    record,
    redis_url,
    time_calls,
)

THREADS = 8
"""dramatiq's default number of worker threads per process."""

broker = RedisBroker(url=redis_url())
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench")
def noop(t: float) -> None:
    record(t)


def enqueue_single(url: str, jobs: int) -> float:
    broker.client.ping()  # connects outside the timing
    return time_calls(jobs, lambda: noop.send(0.0))


def enqueue_bulk(url: str, jobs: int, batch: int) -> float:
    broker.client.ping()
    started = time.perf_counter()
    for size in batches(jobs, batch):
        dramatiq.group(noop.message(0.0) for _ in range(size)).run()
    return time.perf_counter() - started


def worker_command(url: str, burst: bool) -> list[str]:
    command = [console_script("dramatiq"), "peers.dramatiq_app"]
    return [*command, "--processes", "1", "--threads", str(THREADS)]


def latency(url: str, gaps: Sequence[float]) -> list[float]:
    broker.client.ping()
    return latency_loop(url, gaps, noop.send)


PEER = Peer(
    name="dramatiq",
    distributions=("dramatiq",),
    enqueue_single=enqueue_single,
    enqueue_bulk=enqueue_bulk,
    bulk_method="group(messages).run() (enqueues the messages one by one)",
    worker_command=worker_command,
    burst=False,
    worker_settings=f"dramatiq --processes 1 --threads {THREADS} (the default thread count)",
    latency=latency,
)
