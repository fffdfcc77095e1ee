"""celery: a sync no-op task on the Redis broker (no result backend), ``delay`` /
``group(...).apply_async()``, a ``celery worker -P solo`` process."""

from __future__ import annotations

import time
from collections.abc import Sequence

from celery import Celery, group

from peers.common import Peer, batches, console_script, latency_loop, record, redis_url, time_calls

app = Celery("bench", broker=redis_url())
app.conf.broker_connection_retry_on_startup = True  # silences a start-up deprecation warning


@app.task(name="noop")
def noop(t: float) -> None:
    record(t)


def _connect() -> None:
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1)


def enqueue_single(url: str, jobs: int) -> float:
    _connect()
    return time_calls(jobs, lambda: noop.delay(0.0))


def enqueue_bulk(url: str, jobs: int, batch: int) -> float:
    _connect()
    started = time.perf_counter()
    for size in batches(jobs, batch):
        group(noop.s(0.0) for _ in range(size)).apply_async()
    return time.perf_counter() - started


def worker_command(url: str, burst: bool) -> list[str]:
    command = [console_script("celery"), "-A", "peers.celery_app", "worker", "-P", "solo"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    return [*command, "--loglevel", "WARNING"]


def latency(url: str, gaps: Sequence[float]) -> list[float]:
    _connect()
    return latency_loop(url, gaps, noop.delay)


PEER = Peer(
    name="celery",
    distributions=("celery", "kombu"),
    enqueue_single=enqueue_single,
    enqueue_bulk=enqueue_bulk,
    bulk_method="group(signatures).apply_async() (publishes the messages one by one)",
    worker_command=worker_command,
    burst=False,
    worker_settings=(
        "celery worker -P solo --without-gossip --without-mingle --without-heartbeat, "
        "default prefetch multiplier (4)"
    ),
    latency=latency,
)
