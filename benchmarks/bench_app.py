"""The jobs of the benchmarks, and the worker process they start.

The benchmark driver and its worker processes build the same registry from here. Run as a
worker (the benchmarks do this in a child process)::

    PYTHONPATH=.:benchmarks python -m bench_app URL NAMESPACE [--burst] [--gate]

A burst worker processes what is queued, then prints one line ``BENCH_RESULT {json}`` with
its processing time and CPU time (measured around ``await worker.run()``), the jobs it
finished, when
(``time.time()``) its first handler started and its run ended, and its peak resident memory.
A worker started without ``--burst`` runs until SIGTERM. With ``BENCH_METRICS=1`` in the
environment, its registry uses :class:`jobmaster.ops.metrics.WorkerMetrics` (the cost of
``--metrics-port``, without its HTTP server). With ``--gate``, a worker signs in on
a Redis list once it has imported everything, then waits for the driver's go (see
:func:`gate_keys`), so that several workers start processing together.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from typing import Any

import redis

from jobmaster import Registry
from jobmaster.worker import Worker

RESULT_MARKER = "BENCH_RESULT "
"""Prefix of the line a burst worker prints its figures on."""

QUEUE = "bench"

GATE_TIMEOUT = 300
"""Seconds a gated worker waits for the go before it gives up."""

first_start: float | None = None
"""When (``time.time()``) this process's first ``noop`` handler started."""


def gate_keys(namespace: str) -> tuple[str, str]:
    """The lists a gated worker signs in on (its pid), and takes its go from."""
    return f"{namespace}:bench-gate:ready", f"{namespace}:bench-gate:go"


def wait_for_go(url: str, namespace: str) -> None:
    ready, go = gate_keys(namespace)
    client = redis.Redis.from_url(url)
    try:
        client.rpush(ready, os.getpid())
        if client.blpop([go], timeout=GATE_TIMEOUT) is None:
            raise SystemExit(f"no go on {go} within {GATE_TIMEOUT} s")
    finally:
        client.close()


def peak_rss_bytes() -> int:
    """This process's peak resident set size (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def make_registry(url: str, namespace: str) -> Registry:
    """The benchmark's registry: one no-op async job on the ``bench`` queue."""
    registry = Registry(url, namespace=namespace)

    @registry.job(queue=QUEUE)
    async def late(due: float) -> float:
        """How late (seconds) this delayed job started, against its due time."""
        return time.time() - due

    @registry.job(queue=QUEUE)
    async def noop(i: int) -> None:
        global first_start
        if first_start is None:
            first_start = time.time()

    return registry


async def run_worker(url: str, namespace: str, *, burst: bool) -> None:
    registry = make_registry(url, namespace)
    if os.environ.get("BENCH_METRICS") == "1":
        from jobmaster.ops.metrics import WorkerMetrics

        registry.use(WorkerMetrics(concurrency=100))
    worker = Worker(
        registry,
        burst=burst,
        install_signal_handlers=not burst,  # a long-running worker stops on SIGTERM
        echo_job_logs=False,
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    await worker.run()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    ended = time.time()
    await registry.aclose()
    if burst:
        figures: dict[str, Any] = {
            "elapsed_s": elapsed,
            "cpu_s": cpu,
            "jobs_done": worker.jobs_done,
            "first_start": first_start,
            "ended": ended,
            "max_rss_bytes": peak_rss_bytes(),
        }
        print(RESULT_MARKER + json.dumps(figures), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="a jobmaster worker for the benchmarks")
    parser.add_argument("url")
    parser.add_argument("namespace")
    parser.add_argument("--burst", action="store_true", help="stop once the queue is empty")
    parser.add_argument(
        "--gate", action="store_true", help="sign in, then wait for the go to start"
    )
    args = parser.parse_args()
    if args.gate:
        wait_for_go(args.url, args.namespace)
    asyncio.run(run_worker(args.url, args.namespace, burst=args.burst))


if __name__ == "__main__":
    main()
