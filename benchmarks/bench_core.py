"""Throughput and latency of jobmaster alone, on a private redis-server.

Phases of each run (each in its own namespace; the server is flushed between runs):

1. single enqueue: ``await noop.enqueue(i)`` one at a time; ``noop.enqueue_sync(i)`` one at a
   time; and 100 asyncio tasks each awaiting ``noop.enqueue(i)`` one at a time (concurrent
   producers, as in a web application, sharing the event loop's connection);
2. bulk enqueue: ``await noop.enqueue_many(...)`` in batches, which also fills the queue;
3. processing: one burst worker process (default concurrency) empties that queue; it
   reports its own time around ``await worker.run()``; every job must end succeeded;
4. Redis calls per job during processing, from ``INFO commandstats`` before and after;
5. latency: enqueue one job, then ``await handle.result()``, against an idle worker;
6. scaling: the same number of jobs, queued again, emptied by 1, 2 and 4 burst worker
   processes released together;
7. memory: on a flushed server, ``INFO memory`` ``used_memory`` before and after enqueueing
   100,000 no-op jobs (20,000 with ``--quick``) that stay queued.

The processing worker also reports its peak resident memory (``ru_maxrss``).

Usage (from the repository root)::

    python benchmarks/bench_core.py [--jobs N] [--runs N] [--samples N] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import redis
from rich.console import Console
from rich.table import Table

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path[:0] = [str(REPO_ROOT), str(BENCH_DIR)]

from bench_app import QUEUE, RESULT_MARKER, gate_keys, make_registry  # noqa: E402

import jobmaster  # noqa: E402
from jobmaster import JobState  # noqa: E402
from jobmaster.embedded import EmbeddedRedis  # noqa: E402

BATCH = 1000
"""Jobs per ``enqueue_many`` call."""
PRODUCERS = 100
"""Concurrent producer tasks in the concurrent enqueue phase."""
WARMUP = 20
"""Round trips before the latency samples (the first one waits for the worker to start)."""
CHILD_TIMEOUT = 600.0
"""Longest a burst worker may take before the benchmark gives up."""
START_TIMEOUT = 120.0
"""Longest the gated workers of the scaling phase may take to sign in."""
SCALING = (1, 2, 4)
"""Worker processes in the scaling phase."""
MEMORY_UNIT = 100_000
"""Redis memory is reported per this many queued jobs."""
MB = 1_000_000

WARNING_LINE = re.compile(r"\[(warning|error|critical)\s*\]")
"""How structlog's console renderer marks a warning (or worse) in a worker's output."""

console = Console()


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    digits: int


METRICS = (
    Metric("enqueue_single", "await enqueue(), one at a time", "jobs/s", 0),
    Metric("enqueue_sync", "enqueue_sync(), one at a time", "jobs/s", 0),
    Metric("enqueue_concurrent", f"enqueue, {PRODUCERS} concurrent producers", "jobs/s", 0),
    Metric("enqueue_bulk", f"enqueue_many, {BATCH} per call", "jobs/s", 0),
    Metric("process", "processing, 1 worker process (1)", "jobs/s", 0),
    Metric("process_wall", "processing incl. start-up (2)", "jobs/s", 0),
    Metric("round_trips_per_job", "round trips per job (3)", "calls", 3),
    Metric("evalsha_per_job", "EVALSHA calls per job", "calls", 3),
    Metric("calls_per_job", "all commands per job (4)", "calls", 2),
    Metric("latency_p50", "enqueue to result (round trip)", "ms p50", 2),
    Metric("latency_p99", "enqueue to result (round trip)", "ms p99", 2),
    Metric("lateness_p50", "delayed job start after due, loaded (5)", "ms p50", 2),
    Metric("lateness_p99", "delayed job start after due, loaded (5)", "ms p99", 2),
    *(
        Metric(f"scale_{n}", f"processing, {n} process{'es' if n > 1 else ''} (6)", "jobs/s", 0)
        for n in SCALING
    ),
    Metric("worker_rss_mb", "worker peak RSS (7)", "MB", 1),
    Metric("redis_mb_per_100k", f"Redis memory, {MEMORY_UNIT // 1000}k queued jobs (8)", "MB", 1),
)


def notes(memory_jobs: int, cpus: int | None) -> list[str]:
    """The table's footnotes."""
    if memory_jobs == MEMORY_UNIT:
        measured = f"{memory_jobs:,} no-op jobs"
    else:
        measured = f"{memory_jobs:,} no-op jobs, scaled to {MEMORY_UNIT:,}"
    cpu_count = f"The {cpus}" if cpus else "The"
    return [
        "(1) time measured in the worker process, around `await worker.run()`",
        "(2) the parent's wall time, including the worker process start-up",
        "(3) EVALSHA + XREAD calls: the requests the worker sends",
        "(4) all of INFO commandstats: includes commands run inside the Lua scripts",
        "    (Redis 7 counts those), heartbeats and worker start-up",
        "(5) priority-9 jobs delayed 0.05 to 1.5 s, while the worker drains a backlog of",
        "    no-op jobs: how long after their due time the handler started",
        "(6) the same number of jobs, queued again, and burst worker processes started",
        "    together, released at once after their imports: jobs / time from the first",
        "    handler start in any of them to the last return from `worker.run()` (its",
        f"    last completions recorded). {cpu_count} CPUs also run Redis and this driver:",
        "    with more worker processes than CPUs, the workers compete with Redis itself",
        "(7) ru_maxrss of the worker process of (1), over its life; 1 MB = 10^6 bytes",
        "(8) INFO memory used_memory after enqueue_many (1000 per call, no worker)",
        f"    minus before, on a flushed server: {measured}",
    ]


T = TypeVar("T")


class BenchmarkError(RuntimeError):
    """A phase did not do what it should: the figures would be meaningless."""


# -- helpers ------------------------------------------------------------------------------------


def run_async(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(coro_fn())


def child_env() -> dict[str, str]:
    """The environment of a worker process: it imports jobmaster and bench_app."""
    env = dict(os.environ)
    paths = [str(REPO_ROOT), str(BENCH_DIR)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def worker_command(url: str, namespace: str, *, burst: bool) -> list[str]:
    command = [sys.executable, "-m", "bench_app", url, namespace]
    return [*command, "--burst"] if burst else command


def info(client: redis.Redis, section: str) -> dict[str, Any]:
    """One section of ``INFO`` (redis-py's sync client returns it, whatever its annotation)."""
    return cast(dict[str, Any], client.info(section))


def command_calls(client: redis.Redis) -> dict[str, int]:
    """Calls per command so far (``INFO commandstats``)."""
    stats: dict[str, dict[str, Any]] = info(client, "commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def calls_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Commands run between two snapshots, without the snapshots' own INFO calls."""
    delta = {name: n - before.get(name, 0) for name, n in after.items() if name != "info"}
    return {name: n for name, n in sorted(delta.items(), key=lambda kv: -kv[1]) if n > 0}


def worker_warnings(output: str) -> list[str]:
    """The lines a worker process logged at warning level or above."""
    return [line for line in output.splitlines() if WARNING_LINE.search(line)]


def percentile(samples: list[float], pct: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]


# -- phases -------------------------------------------------------------------------------------


async def enqueue_single(url: str, namespace: str, jobs: int) -> float:
    """Jobs per second enqueued one ``await enqueue()`` at a time."""
    async with make_registry(url, namespace) as registry:
        noop = registry.get("noop")
        await noop.enqueue(-1)  # connects and registers the queue outside the timing
        started = time.perf_counter()
        for i in range(jobs):
            await noop.enqueue(i)
        elapsed = time.perf_counter() - started
    return jobs / elapsed


def enqueue_sync(url: str, namespace: str, jobs: int) -> float:
    """Jobs per second enqueued by ``enqueue_sync()`` one at a time (no event loop)."""
    registry = make_registry(url, namespace)
    try:
        noop = registry.get("noop")
        noop.enqueue_sync(-1)  # connects and registers the queue outside the timing
        started = time.perf_counter()
        for i in range(jobs):
            noop.enqueue_sync(i)
        return jobs / (time.perf_counter() - started)
    finally:
        registry.close()


async def enqueue_concurrent(url: str, namespace: str, jobs: int) -> float:
    """Jobs per second enqueued by ``PRODUCERS`` tasks, each one ``await enqueue()`` at a
    time (their calls share the event loop's multiplexed connection)."""
    async with make_registry(url, namespace) as registry:
        noop = registry.get("noop")
        await noop.enqueue(-1)

        async def producer(first: int) -> None:
            for i in range(first, jobs, PRODUCERS):
                await noop.enqueue(i)

        started = time.perf_counter()
        await asyncio.gather(*(producer(n) for n in range(PRODUCERS)))
        elapsed = time.perf_counter() - started
        counts = await registry.count_jobs(QUEUE)
    if counts[JobState.QUEUED] != jobs + 1:
        raise BenchmarkError(f"{jobs} jobs enqueued concurrently, but the queue holds {counts}")
    return jobs / elapsed


async def enqueue_bulk(url: str, namespace: str, jobs: int) -> float:
    """Jobs per second enqueued by ``enqueue_many`` in batches of ``BATCH``."""
    async with make_registry(url, namespace) as registry:
        noop = registry.get("noop")
        await registry.count_jobs(QUEUE)  # connects outside the timing
        started = time.perf_counter()
        for first in range(0, jobs, BATCH):
            handles = await noop.enqueue_many(
                [(i,) for i in range(first, min(first + BATCH, jobs))]
            )
            if not all(h.created for h in handles):
                raise BenchmarkError("enqueue_many reported jobs that already existed")
        elapsed = time.perf_counter() - started
        counts = await registry.count_jobs(QUEUE)
    if counts[JobState.QUEUED] != jobs:
        raise BenchmarkError(f"{jobs} jobs enqueued in bulk, but the queue holds {counts}")
    return jobs / elapsed


def process(url: str, namespace: str, jobs: int) -> dict[str, Any]:
    """Empty the queue filled by :func:`enqueue_bulk` with one burst worker process."""
    client = redis.Redis.from_url(url)
    try:
        before = command_calls(client)
        started = time.perf_counter()
        child = subprocess.run(
            worker_command(url, namespace, burst=True),
            cwd=REPO_ROOT,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            check=False,
        )
        wall = time.perf_counter() - started
        calls = calls_between(before, command_calls(client))
    finally:
        client.close()
    figures = _child_figures(child)
    counts = run_async(lambda: _counts(url, namespace))
    unfinished = {s.value: n for s, n in counts.items() if s is not JobState.SUCCEEDED and n}
    if figures["jobs_done"] != jobs or counts[JobState.SUCCEEDED] != jobs or unfinished:
        raise BenchmarkError(
            f"expected {jobs} succeeded jobs; the worker finished {figures['jobs_done']}, "
            f"the queue counts {counts[JobState.SUCCEEDED]} succeeded and {unfinished or 'no'} "
            "others"
        )
    round_trips = calls.get("evalsha", 0) + calls.get("xread", 0)
    return {
        "process": jobs / figures["elapsed_s"],
        "process_wall": jobs / wall,
        "round_trips_per_job": round_trips / jobs,
        "evalsha_per_job": calls.get("evalsha", 0) / jobs,
        "calls_per_job": sum(calls.values()) / jobs,
        "worker_elapsed_s": figures["elapsed_s"],
        "worker_cpu_us_per_job": figures.get("cpu_s", 0.0) / jobs * 1e6,
        "worker_rss_mb": figures["max_rss_bytes"] / MB,
        "commands": calls,
        "process_worker_warnings": worker_warnings(child.stdout + child.stderr),
    }


def _child_figures(child: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = [ln for ln in child.stdout.splitlines() if ln.startswith(RESULT_MARKER)]
    if child.returncode != 0 or not lines:
        raise BenchmarkError(
            f"the worker process exited with {child.returncode} without its figures\n"
            f"stdout:\n{child.stdout[-3000:]}\nstderr:\n{child.stderr[-3000:]}"
        )
    figures: dict[str, Any] = json.loads(lines[-1].removeprefix(RESULT_MARKER))
    return figures


async def _counts(url: str, namespace: str) -> dict[JobState, int]:
    async with make_registry(url, namespace) as registry:
        return await registry.count_jobs(QUEUE)


def latency(url: str, namespace: str, samples: int) -> dict[str, Any]:
    """Enqueue one job and wait for its result, ``samples`` times, against an idle worker."""
    with tempfile.TemporaryFile("w+") as output:
        worker = subprocess.Popen(
            worker_command(url, namespace, burst=False),
            cwd=REPO_ROOT,
            env=child_env(),
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            timings = run_async(lambda: _round_trips(url, namespace, samples))
            lateness = run_async(lambda: _lateness_under_load(url, namespace, samples))
        except BaseException:
            worker.kill()
            worker.wait()
            output.seek(0)
            console.print(f"[red]worker output:[/red]\n{output.read()[-3000:]}")
            raise
        worker.send_signal(signal.SIGTERM)
        try:
            code = worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
            raise BenchmarkError("the latency worker did not stop on SIGTERM") from None
        output.seek(0)
        logged = output.read()
        if code != 0:
            raise BenchmarkError(f"the latency worker exited with {code}:\n{logged}")
    timings_ms = [t * 1000 for t in timings]
    return {
        "latency_p50": percentile(timings_ms, 50),
        "latency_p99": percentile(timings_ms, 99),
        "latency_mean": statistics.fmean(timings_ms),
        "latency_max": max(timings_ms),
        "latency_worker_warnings": worker_warnings(logged),
        "lateness_p50": percentile(lateness, 50),
        "lateness_p99": percentile(lateness, 99),
        "lateness_max": max(lateness),
    }


async def _round_trips(url: str, namespace: str, samples: int) -> list[float]:
    async with make_registry(url, namespace) as registry:
        noop = registry.get("noop")
        for i in range(WARMUP):
            await (await noop.enqueue(i)).result(timeout=60)
        timings = []
        for i in range(samples):
            started = time.perf_counter()
            handle = await noop.enqueue(i)
            await handle.result(timeout=30)
            timings.append(time.perf_counter() - started)
        return timings


async def _lateness_under_load(url: str, namespace: str, samples: int) -> list[float]:
    """Milliseconds by which delayed jobs (due 0.05 to 1.5 s after enqueue) start late, while
    the worker also works through a backlog of no-op jobs."""
    async with make_registry(url, namespace) as registry:
        noop, late = registry.get("noop"), registry.get("late")
        await noop.enqueue_many([(i,) for i in range(samples * 20)])  # the load
        handles = []
        for i in range(samples):
            delay = 0.05 + 1.45 * i / samples
            # priority 9: a backlog of priority 0 does not stand in front of due jobs
            options = late.options(delay=delay, priority=9)
            handles.append(await options.enqueue(time.time() + delay))
        return [1000 * await h.result(timeout=60) for h in handles]


def scaling(url: str, namespace: str, jobs: int, processes: int) -> dict[str, Any]:
    """Queue ``jobs`` no-op jobs, then empty the queue with ``processes`` burst workers that
    start processing together."""
    run_async(lambda: enqueue_bulk(url, namespace, jobs))
    children = run_gated_workers(url, namespace, processes)
    figures = [_child_figures(child) for child in children]
    done = sum(f["jobs_done"] for f in figures)
    counts = run_async(lambda: _counts(url, namespace))
    if done != jobs or counts[JobState.SUCCEEDED] != jobs:
        raise BenchmarkError(
            f"{processes} workers finished {done} of {jobs} jobs; the queue counts "
            f"{counts[JobState.SUCCEEDED]} succeeded"
        )
    first = min(f["first_start"] for f in figures if f["first_start"] is not None)
    last = max(f["ended"] for f in figures)
    return {
        f"scale_{processes}": jobs / (last - first),
        f"scale_{processes}_jobs_per_worker": [f["jobs_done"] for f in figures],
        f"scale_{processes}_worker_warnings": [
            line for child in children for line in worker_warnings(child.stdout)
        ],
    }


def run_gated_workers(
    url: str, namespace: str, processes: int
) -> list[subprocess.CompletedProcess[str]]:
    """Start ``processes`` gated burst workers, wait until all have signed in, let them go
    at once and wait for them to exit."""
    ready, go = gate_keys(namespace)
    command = [*worker_command(url, namespace, burst=True), "--gate"]
    client = redis.Redis.from_url(url)
    with contextlib.ExitStack() as stack:
        stack.callback(client.close)
        outputs = [stack.enter_context(tempfile.TemporaryFile("w+")) for _ in range(processes)]
        children = [
            subprocess.Popen(
                command, cwd=REPO_ROOT, env=child_env(), stdout=out, stderr=subprocess.STDOUT
            )
            for out in outputs
        ]
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while cast(int, client.llen(ready)) < processes:
                if any(c.poll() is not None for c in children) or time.monotonic() > deadline:
                    raise BenchmarkError("a scaling worker exited or did not sign in")
                time.sleep(0.01)
            client.rpush(go, *["go"] * processes)
            for child in children:
                child.wait(timeout=CHILD_TIMEOUT)
        except BaseException:
            for child in children:
                child.kill()
                child.wait()
            for out in outputs:
                out.seek(0)
                console.print("worker output:", style="red")
                console.print(out.read()[-3000:], markup=False, highlight=False)
            raise
        finished = []
        for child, out in zip(children, outputs, strict=True):
            out.seek(0)
            finished.append(subprocess.CompletedProcess(command, child.returncode, out.read(), ""))
    return finished


def memory(url: str, namespace: str, jobs: int) -> dict[str, Any]:
    """Redis memory taken by ``jobs`` queued no-op jobs, from ``INFO memory`` on a flushed
    server (the scripts stay loaded: FLUSHALL keeps them)."""
    client = redis.Redis.from_url(url)
    try:
        client.flushall()  # synchronous: the private server does not set lazyfree-lazy-user-flush
        before = int(info(client, "memory")["used_memory"])
        run_async(lambda: enqueue_bulk(url, namespace, jobs))
        after = int(info(client, "memory")["used_memory"])
        client.flushall()
    finally:
        client.close()
    per_job = (after - before) / jobs
    return {
        "redis_mb_per_100k": per_job * MEMORY_UNIT / MB,
        "redis_bytes_per_job": per_job,
        "redis_memory_jobs": jobs,
    }


# -- driver -------------------------------------------------------------------------------------


def one_run(url: str, run: int, jobs: int, samples: int, memory_jobs: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        (
            "single enqueue",
            lambda: {"enqueue_single": run_async(lambda: enqueue_single(url, f"b{run}s", jobs))},
        ),
        (
            "enqueue_sync",
            lambda: {"enqueue_sync": enqueue_sync(url, f"b{run}y", jobs)},
        ),
        (
            "concurrent enqueue",
            lambda: {
                "enqueue_concurrent": run_async(lambda: enqueue_concurrent(url, f"b{run}c", jobs))
            },
        ),
        (
            "bulk enqueue",
            lambda: {"enqueue_bulk": run_async(lambda: enqueue_bulk(url, f"bench{run}", jobs))},
        ),
        ("processing", lambda: process(url, f"bench{run}", jobs)),
        ("latency", lambda: latency(url, f"b{run}lat", samples)),
        *(
            (
                f"processing with {n} worker process(es)",
                functools.partial(scaling, url, f"b{run}w{n}", jobs, n),
            )
            for n in SCALING
        ),
        ("Redis memory", lambda: memory(url, f"b{run}mem", memory_jobs)),
    ]
    for name, step in steps:
        with console.status(f"run {run + 1}: {name}"):
            results.update(step())
    return results


def summarize(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {m.key: statistics.median(r[m.key] for r in runs) for m in METRICS}


def show(
    runs: list[dict[str, Any]], medians: dict[str, float], title: str, footnotes: list[str]
) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("median", justify="right", style="bold")
    table.add_column("unit")
    table.add_column("runs", justify="right", style="dim")
    for m in METRICS:
        each = ", ".join(f"{r[m.key]:,.{m.digits}f}" for r in runs)
        table.add_row(m.label, f"{medians[m.key]:,.{m.digits}f}", m.unit, each)
    console.print(table)
    for note in footnotes:
        console.print(note, highlight=False, markup=False)
    for run, results in enumerate(runs, 1):
        for key, lines in results.items():
            if not key.endswith("_worker_warnings"):
                continue
            phase = key.removesuffix("_worker_warnings")
            for line in lines:
                console.print(f"run {run}, {phase} worker: {line}", style="yellow", markup=False)


DEFAULTS = {"jobs": 20_000, "runs": 3, "samples": 1000}
QUICK = {"jobs": 5000, "runs": 1, "samples": 500}
MEMORY_JOBS = {"default": MEMORY_UNIT, "quick": 20_000}
"""Jobs queued for the Redis memory figure."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, help="jobs per phase (default 20000)")
    parser.add_argument("--runs", type=int, help="runs; medians are shown (default 3)")
    parser.add_argument("--samples", type=int, help="latency samples per run (default 1000)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="defaults of 5000 jobs, 1 run, 500 samples; 20000 jobs for the memory figure",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results here")
    args = parser.parse_args()
    for name, default in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.jobs < 1 or args.runs < 1 or args.samples < 100:
        parser.error("--jobs and --runs must be >= 1, --samples >= 100")
    args.memory_jobs = MEMORY_JOBS["quick" if args.quick else "default"]
    return args


def main() -> None:
    args = parse_args()
    runs: list[dict[str, Any]] = []
    with EmbeddedRedis() as server:
        if server.port == 6379:
            raise BenchmarkError("refusing to benchmark on the default Redis port")
        client = redis.Redis.from_url(server.url)
        redis_version = str(info(client, "server")["redis_version"])
        for run in range(args.runs):
            client.flushall()
            runs.append(one_run(server.url, run, args.jobs, args.samples, args.memory_jobs))
        client.close()
    medians = summarize(runs)
    cpus = os.cpu_count()
    title = (
        f"jobmaster {jobmaster.__version__}: {args.jobs:,} jobs x {args.runs} run(s)\n"
        f"Redis {redis_version}, Python {platform.python_version()}, {cpus} CPUs"
    )
    show(runs, medians, title, notes(args.memory_jobs, cpus))
    if args.json is not None:
        report = {
            "jobmaster": jobmaster.__version__,
            "redis": redis_version,
            "python": platform.python_version(),
            "cpus": cpus,
            "jobs": args.jobs,
            "runs": args.runs,
            "latency_samples": args.samples,
            "batch": BATCH,
            "scaling_processes": list(SCALING),
            "memory_jobs": args.memory_jobs,
            "medians": medians,
            "per_run": runs,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
