"""What flow control costs: processing no-op jobs with no controls, with ``max_running=100``,
with a ``rate_limit`` too high to bind, and with ``max_running=5`` per key over 1,000 keys.

For each kind, in turns (``--rounds``, medians shown): ``--jobs`` jobs are enqueued, then an
in-process burst worker (concurrency 100) processes them; the rate is jobs over the worker's
run. With ``--instructions`` the same runs against a redis-server under callgrind and the
Redis instructions per processed job are shown instead (see redis_instructions.py; needs
valgrind). Usage (from the repository root)::

    .venv/bin/python benchmarks/flow_control.py [--jobs 20000] [--rounds 3] [--instructions]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR.parent), str(BENCH_DIR)]

from jobmaster import Registry  # noqa: E402
from jobmaster.embedded import EmbeddedRedis  # noqa: E402
from jobmaster.worker import Worker  # noqa: E402

KINDS = ("none", "max_running=100", "rate_limit (not binding)", "per key, 1,000 keys")


def make_registry(url: str) -> Registry:
    registry = Registry(url, namespace="flowbench")

    @registry.job(queue="plain")
    async def plain(i: int) -> None: ...

    @registry.job(queue="capped", max_running=100)
    async def capped(i: int) -> None: ...

    @registry.job(queue="paced", rate_limit="100000000/s")
    async def paced(i: int) -> None: ...

    @registry.job(queue="keyed", max_running=5, limit_key="{key}")
    async def keyed(i: int, key: int) -> None: ...

    return registry


async def enqueue(registry: Registry, kind: str, jobs: int) -> str:
    name = {KINDS[0]: "plain", KINDS[1]: "capped", KINDS[2]: "paced", KINDS[3]: "keyed"}[kind]
    handler = registry.jobs[name]
    for first in range(0, jobs, 1000):
        count = min(1000, jobs - first)
        if name == "keyed":
            await handler.enqueue_many([(first + n, (first + n) % 1000) for n in range(count)])
        else:
            await handler.enqueue_many([(first + n,) for n in range(count)])
    return handler.definition.queue


async def process(registry: Registry, queue: str, jobs: int) -> float:
    worker = Worker(
        registry, queues=[queue], burst=True, install_signal_handlers=False, echo_job_logs=False
    )
    started = time.perf_counter()
    await worker.run()
    elapsed = time.perf_counter() - started
    if worker.jobs_done != jobs:
        raise RuntimeError(f"{queue}: the worker did {worker.jobs_done} jobs, not {jobs}")
    return jobs / elapsed


def rates(url: str, jobs: int, rounds: int) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for _ in range(rounds):
        for kind in KINDS:
            registry = make_registry(url)

            async def one(kind: str = kind, registry: Registry = registry) -> float:
                async with registry:
                    queue = await enqueue(registry, kind, jobs)
                    return await process(registry, queue, jobs)

            found[kind].append(asyncio.run(one()))
            registry.close()
    return found


def instructions(jobs: int) -> dict[str, float]:
    from redis_instructions import callgrind_server  # the same counter

    figures = {}
    with callgrind_server() as (url, counter):
        for kind in KINDS:
            registry = make_registry(url)

            def run(kind: str = kind, registry: Registry = registry) -> Callable[[], None]:
                queue = asyncio.run(enqueue(registry, kind, jobs))
                return lambda: asyncio.run(process(registry, queue, jobs)) and None

            figures[kind] = counter.count(run()) / jobs
            registry.close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instructions", action="store_true")
    args = parser.parse_args()
    if args.instructions:
        figures = instructions(min(args.jobs, 5000))
        print("Redis instructions per processed job (callgrind)")
        for kind, value in figures.items():
            ratio = value / figures[KINDS[0]]
            print(f"  {kind:<26} {value:>9,.0f}  ({ratio:.2f}x)")
        return 0
    with EmbeddedRedis() as server:
        found = rates(server.url, args.jobs, args.rounds)
    base = statistics.median(found[KINDS[0]])
    print(f"processing, jobs/s (medians of {args.rounds} rounds of {args.jobs:,} jobs, in turns)")
    for kind, values in found.items():
        median = statistics.median(values)
        print(f"  {kind:<26} {median:>9,.0f}  ({median / base:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
