"""rq: a sync no-op job, ``Queue.enqueue`` / ``Queue.enqueue_many``, a ``SimpleWorker``."""

from __future__ import annotations

import time
from collections.abc import Sequence

from redis import Redis
from rq import Queue

from peers.common import Peer, batches, console_script, latency_loop, record, time_calls

QUEUE = "bench"


def noop(t: float) -> None:
    record(t)


def _queue(url: str) -> Queue:
    connection = Redis.from_url(url)
    connection.ping()  # connects outside the timing
    return Queue(QUEUE, connection=connection)


def enqueue_single(url: str, jobs: int) -> float:
    queue = _queue(url)
    return time_calls(jobs, lambda: queue.enqueue(noop, 0.0))


def enqueue_bulk(url: str, jobs: int, batch: int) -> float:
    queue = _queue(url)
    started = time.perf_counter()
    for size in batches(jobs, batch):  # enqueue_many executes the pipeline it creates
        queue.enqueue_many([Queue.prepare_data(noop, (0.0,)) for _ in range(size)])
    return time.perf_counter() - started


def worker_command(url: str, burst: bool) -> list[str]:
    command = [console_script("rq"), "worker", "--url", url, "--quiet"]
    command += ["--worker-class", "rq.worker.SimpleWorker", QUEUE]
    return [*command, "--burst"] if burst else command


def latency(url: str, gaps: Sequence[float]) -> list[float]:
    queue = _queue(url)
    return latency_loop(url, gaps, lambda t: queue.enqueue(noop, t))


PEER = Peer(
    name="rq",
    distributions=("rq",),
    enqueue_single=enqueue_single,
    enqueue_bulk=enqueue_bulk,
    bulk_method="Queue.enqueue_many(Queue.prepare_data(...)) (one pipeline per call)",
    worker_command=worker_command,
    burst=True,
    worker_settings="rq worker --burst --worker-class SimpleWorker (no fork per job)",
    latency=latency,
)
