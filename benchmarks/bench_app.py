"""The jobs of the benchmarks, and the worker process they start.

The benchmark driver and its worker processes build the same registry from here. Run as a
worker (the benchmarks do this in a child process)::

    PYTHONPATH=.:benchmarks python -m bench_app URL NAMESPACE [--burst]

A burst worker processes what is queued, then prints one line ``BENCH_RESULT {json}`` with
its processing time (measured around ``await worker.run()``) and the jobs it finished. A
worker started without ``--burst`` runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from jobmaster import Registry
from jobmaster.worker import Worker

RESULT_MARKER = "BENCH_RESULT "
"""Prefix of the line a burst worker prints its figures on."""

QUEUE = "bench"


def make_registry(url: str, namespace: str) -> Registry:
    """The benchmark's registry: one no-op async job on the ``bench`` queue."""
    registry = Registry(url, namespace=namespace)

    @registry.job(queue=QUEUE)
    async def late(due: float) -> float:
        """How late (seconds) this delayed job started, against its due time."""
        return time.time() - due

    @registry.job(queue=QUEUE)
    async def noop(i: int) -> None:
        return None

    return registry


async def run_worker(url: str, namespace: str, *, burst: bool) -> None:
    registry = make_registry(url, namespace)
    worker = Worker(
        registry,
        burst=burst,
        install_signal_handlers=not burst,  # a long-running worker stops on SIGTERM
        echo_job_logs=False,
    )
    started = time.perf_counter()
    await worker.run()
    elapsed = time.perf_counter() - started
    await registry.aclose()
    if burst:
        figures = {"elapsed_s": elapsed, "jobs_done": worker.jobs_done}
        print(RESULT_MARKER + json.dumps(figures), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="a jobmaster worker for the benchmarks")
    parser.add_argument("url")
    parser.add_argument("namespace")
    parser.add_argument("--burst", action="store_true", help="stop once the queue is empty")
    args = parser.parse_args()
    asyncio.run(run_worker(args.url, args.namespace, burst=args.burst))


if __name__ == "__main__":
    main()
