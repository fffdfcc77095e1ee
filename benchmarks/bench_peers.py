"""jobmaster side by side with rq, arq, saq, dramatiq, celery, huey, taskiq, bullmq and streaq.

Every library runs against one private redis-server (flushed before each measurement), with
a no-op job whose handler counts itself in the worker's memory and writes to Redis only at
the first and the last job (see ``peers/common.py``). For each library, in each run:

1. enqueue one job at a time (jobs/s), then, where the library has one, with its bulk API in
   calls of ``--batch`` jobs, after one untimed bulk call of 10 jobs (on a flushed server);
   the queue so filled is the next phase's;
2. processing: one worker process started on that queue; the wall time from starting it to
   the handler that brings the count to ``--jobs`` (it writes the count; the driver polls it
   every 10 ms), and the rate between the first handler's start and the last one's end, as
   the handlers timed them;
3. latency, one worker process started on an empty queue: enqueue one job carrying
   ``time.time()``, wait for the handler to push its own ``time.time()`` (BRPOP); first
   ``--samples`` times back to back (the next job goes out the moment the last one started),
   then ``--idle-samples`` times after an idle gap each, drawn uniformly from ``--idle-gap``
   (50-550 ms) with ``--seed``: the same gaps for every library and run. A worker left idle
   that long has gone to sleep as in production (its blocking read waits, its threads
   sleep), which back-to-back samples never see;
4. the same with "bare streams": redis-py on one stream, no job semantics, the ceiling.

Run it with ``scripts/bench-peers`` (which installs the peers into ``.venv-bench``)::

    scripts/bench-peers [--jobs N] [--runs N] [--samples N] [--idle-samples N]
                        [--idle-gap MIN,MAX] [--seed N] [--batch N] [--only a,b]
                        [--quick] [--json PATH]

The idle samples take most of a run's time: 200 of them wait 60 s on average per library.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import redis
from rich.console import Console
from rich.table import Table

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path[:0] = [str(REPO_ROOT), str(BENCH_DIR)]

from peers import MODULES  # noqa: E402
from peers.common import (  # noqa: E402
    DONE_KEY,
    FIRST_KEY,
    JOBS_ENV,
    LAST_KEY,
    URL_ENV,
    Peer,
)

from jobmaster.embedded import EmbeddedRedis  # noqa: E402

BULK_WARMUP = 10
"""Jobs of the untimed bulk call before the timed one."""
POLL_INTERVAL = 0.01
"""How often the driver reads the done counter while a worker processes."""
STOP_TIMEOUT = 15.0
"""Longest wait for a worker to exit (after SIGTERM, or by itself in burst mode)."""
OUTPUT_TAIL = 2000
"""Characters of a failed worker's output kept in the report."""

console = Console(width=None if sys.stdout.isatty() else 200)


@dataclass(frozen=True)
class Worker:
    process: subprocess.Popen[str]
    output: IO[str]


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    digits: int
    higher_is_better: bool
    summed: bool = False
    """Shown as the total over the runs rather than their median."""


METRICS = (
    Metric("enqueue_single", "enqueue\none at a time", "jobs/s", 0, True),
    Metric("enqueue_bulk", "enqueue\nbulk (1)", "jobs/s", 0, True),
    Metric("process_wall", "processing\nwall (2)", "jobs/s", 0, True),
    Metric("process_steady", "processing\nfirst-last (3)", "jobs/s", 0, True),
    Metric("startup", "worker start\nto 1st job", "s", 2, False),
    Metric("calls_per_job", "Redis cmds\nper job (4)", "calls", 2, False),
    Metric("redis_cpu_per_job", "Redis CPU\nper job (7)", "us", 1, False),
    Metric("latency_idle_p50", "latency idle\np50 (5)", "ms", 2, False),
    Metric("latency_idle_p99", "latency idle\np99 (5)", "ms", 2, False),
    Metric("latency_b2b_p50", "back to back\np50 (8)", "ms", 2, False),
    Metric("latency_b2b_p99", "back to back\np99 (8)", "ms", 2, False),
    Metric("extra_runs", "extra handler\nruns (6)", "total", 0, False, summed=True),
)
NOTES = (
    "(1) the library's bulk API, {batch} jobs per call, after an untimed call of "
    f"{BULK_WARMUP} jobs; n/a: it has none, and the queue filled one at a time is the one "
    "processed",
    "(2) jobs / time from starting the worker process to the last handler, as the "
    "driver saw it (polling every 10 ms): includes interpreter start-up, imports, connecting "
    "and every handler; excludes what follows the last handler (acks, results, exit)",
    "(3) jobs / time from the first handler's start to the last handler's end, by the "
    "handlers' own time.time()",
    "(4) Redis commands per job from the worker's start to the last handler, from INFO "
    "commandstats (Redis 7 also counts the commands run inside Lua scripts); the driver's "
    "polling not included",
    "(5) from time.time() before the enqueue call to time.time() at the handler's start, one "
    "job at a time, each after the worker was left idle for a random {gap_low:g}-{gap_high:g} "
    "ms (seed {seed}, the same gaps for every library), {idle_samples} samples",
    "(6) handler runs beyond one per job while processing (jobs run twice), summed over the "
    "runs; the wall time then ends when the count of runs reaches the count of jobs",
    "(7) CPU time of the redis-server process (INFO cpu, user + system) per job over the same "
    "span as (4): what each library's bookkeeping costs Redis itself",
    "(8) as (5), each job sent the moment the last one started (the worker never sleeps), "
    "{samples} samples before the idle ones, on the same worker",
    "ratio rows: jobmaster / the best peer (named) and jobmaster / bare streams; for jobs/s "
    "above 1 favours jobmaster, for s, calls and ms below 1 does",
)


class BenchmarkError(RuntimeError):
    """A phase did not do what it should: the figures would be meaningless."""


# -- worker processes -----------------------------------------------------------------------------


def worker_env(url: str, jobs: int) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(BENCH_DIR), str(REPO_ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env.update({"PYTHONPATH": os.pathsep.join(paths), URL_ENV: url, JOBS_ENV: str(jobs)})
    return env


def tail(output: IO[str]) -> str:
    output.flush()
    output.seek(0)
    return output.read()[-OUTPUT_TAIL:]


def stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM the worker's process group (it may have children), then SIGKILL it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=STOP_TIMEOUT)
            return
        except subprocess.TimeoutExpired:
            continue
    process.wait()


@contextmanager
def worker(peer: Peer, url: str, jobs: int, *, burst: bool) -> Iterator[Worker]:
    """A worker process of ``peer`` for the duration of the block, its output in a file."""
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen(
            peer.worker_command(url, burst),
            cwd=BENCH_DIR,
            env=worker_env(url, jobs),
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: stop() reaches its children
        )
        try:
            yield Worker(process, output)
        except BenchmarkError:
            raise
        except Exception as exc:
            stop(process)
            raise BenchmarkError(f"{short(exc)}\nworker output:\n{tail(output)}") from exc
        finally:
            stop(process)


# -- phases ---------------------------------------------------------------------------------------


def command_calls(client: redis.Redis) -> dict[str, int]:
    stats: dict[str, dict[str, Any]] = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def redis_cpu(client: redis.Redis) -> float:
    """Seconds of CPU the redis-server process has used (user + system)."""
    cpu: dict[str, Any] = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def process(peer: Peer, client: redis.Redis, url: str, jobs: int) -> dict[str, Any]:
    """Run one worker on the filled queue until every job's handler ran."""
    timeout = 60 + jobs / 50
    reads = 0

    def done() -> int:
        nonlocal reads
        reads += 1
        return int(client.get(DONE_KEY) or 0)

    before, cpu_before = command_calls(client), redis_cpu(client)
    spawned = time.time()
    started = time.perf_counter()
    with worker(peer, url, jobs, burst=peer.burst) as w:
        while (count := done()) < jobs:
            if w.process.poll() is not None and done() < jobs:
                raise BenchmarkError(
                    f"the worker exited with {w.process.returncode} after {count} of {jobs} "
                    f"jobs:\n{tail(w.output)}"
                )
            if time.perf_counter() - started > timeout:
                raise BenchmarkError(f"{count} of {jobs} jobs done after {timeout:g}s")
            time.sleep(POLL_INTERVAL)
        elapsed = time.perf_counter() - started
        calls, own_reads, cpu = command_calls(client), reads, redis_cpu(client) - cpu_before
        if peer.burst:
            try:
                code = w.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise BenchmarkError("the burst worker did not exit once done") from None
            if code != 0:
                raise BenchmarkError(f"the burst worker exited with {code}:\n{tail(w.output)}")
    if (count := done()) < jobs:
        raise BenchmarkError(f"{jobs} jobs enqueued, but the handlers ran {count} times")
    first, last = float(client.get(FIRST_KEY) or 0), float(client.get(LAST_KEY) or 0)
    if not spawned < first <= last:
        raise BenchmarkError(f"the handlers' first/last times are wrong: {first}, {last}")
    commands = {n: c - before.get(n, 0) for n, c in calls.items() if n != "info"}
    commands["get"] = commands.get("get", 0) - own_reads
    return {
        "process_wall": jobs / elapsed,
        "process_steady": jobs / (last - first),
        "process_wall_s": elapsed,
        "startup": first - spawned,
        "calls_per_job": sum(commands.values()) / jobs,
        "redis_cpu_per_job": cpu / jobs * 1e6,
        "extra_runs": count - jobs,
        "commands": {n: c for n, c in sorted(commands.items(), key=lambda kv: -kv[1]) if c},
    }


def idle_gaps(seed: int, count: int, low_ms: float, high_ms: float) -> list[float]:
    """The idle gaps (seconds) before the idle latency samples: uniform in [low, high] ms, the
    same for every library since they depend on the seed alone."""
    rng = random.Random(seed)
    return [rng.uniform(low_ms, high_ms) / 1000 for _ in range(count)]


def percentiles(prefix: str, timings_ms: list[float]) -> dict[str, float]:
    quantiles = statistics.quantiles(timings_ms, n=100, method="inclusive")
    return {
        f"{prefix}_p50": quantiles[49],
        f"{prefix}_p99": quantiles[98],
        f"{prefix}_mean": statistics.fmean(timings_ms),
        f"{prefix}_max": max(timings_ms),
    }


def latency(peer: Peer, url: str, samples: int, gaps: Sequence[float]) -> dict[str, float]:
    """Back-to-back samples, then one sample after each idle gap, on one worker process."""
    with worker(peer, url, 0, burst=False):
        timings_ms = [t * 1000 for t in peer.latency(url, [0.0] * samples + list(gaps))]
    if len(timings_ms) != samples + len(gaps):
        raise BenchmarkError(f"{len(timings_ms)} latency samples, {samples + len(gaps)} asked")
    return {
        **percentiles("latency_idle", timings_ms[samples:]),
        **percentiles("latency_b2b", timings_ms[:samples]),
    }


def one_run(
    peer: Peer, client: redis.Redis, url: str, args: argparse.Namespace, gaps: Sequence[float]
) -> dict[str, Any]:
    jobs = args.jobs
    results: dict[str, Any] = {}

    def single() -> None:
        client.flushall()
        results["enqueue_single"] = jobs / peer.enqueue_single(url, jobs)

    def bulk() -> None:
        if peer.enqueue_bulk is None:  # the queue filled one at a time is processed
            results["enqueue_bulk"] = None
            return
        # untimed, for every library: what a bulk call sets up once (connections, validators
        # built on first use) stays out of the figure, as in an application that ran before
        peer.enqueue_bulk(url, BULK_WARMUP, args.batch)
        client.flushall()
        results["enqueue_bulk"] = jobs / peer.enqueue_bulk(url, jobs, args.batch)

    def processing() -> None:
        results.update(process(peer, client, url, jobs))

    def latencies() -> None:
        client.flushall()
        results.update(latency(peer, url, args.samples, gaps))

    steps: list[tuple[str, Callable[[], None]]] = [
        ("enqueue one at a time", single),
        ("bulk enqueue", bulk),
        ("processing", processing),
        ("latency", latencies),
    ]
    for name, step in steps:
        with console.status(f"{peer.name}: {name}"):
            step()
    return results


# -- report ---------------------------------------------------------------------------------------


def summary(runs: list[dict[str, Any]], metric: Metric) -> float | None:
    values = [r[metric.key] for r in runs if r.get(metric.key) is not None]
    if not values:
        return None
    return sum(values) if metric.summed else statistics.median(values)


def ratio_cells(
    medians: dict[str, dict[str, float | None]], peers: dict[str, Peer]
) -> tuple[list[str], list[str]]:
    """The cells of the two ratio rows: jobmaster / best peer, jobmaster / bare streams."""
    best_row, ceiling_row = [], []
    mine = medians.get("jobmaster", {})
    ceiling = medians.get("streams", {})
    for m in METRICS:
        value = mine.get(m.key)
        others = {
            peers[name].name: row[m.key]
            for name, row in medians.items()
            if name != "jobmaster" and not peers[name].reference and row.get(m.key) is not None
        }
        if value is None or not others:
            best_row.append("")
        else:
            choose = max if m.higher_is_better else min
            best_name = choose(others, key=lambda n: others[n])
            best = others[best_name]
            best_row.append(f"{value / best:.2f}x ({best_name})" if best else "")
        reference = ceiling.get(m.key)
        ceiling_row.append(f"{value / reference:.2f}x" if value and reference else "")
    return best_row, ceiling_row


def show(
    medians: dict[str, dict[str, float | None]],
    failures: dict[str, str],
    peers: dict[str, Peer],
    args: argparse.Namespace,
    title: str,
) -> None:
    table = Table(title=title)
    table.add_column("library")
    for m in METRICS:
        table.add_column(f"{m.label}\n{m.unit}", justify="right")
    if failures:
        table.add_column("failed", style="red", overflow="fold", min_width=30, max_width=60)
    for name in [n for n in MODULES if n in medians or n in failures]:
        label = peers[name].name if name in peers else name
        if name in failures:
            table.add_row(label, *["-"] * len(METRICS), f"failed: {failures[name]}")
            continue
        row = medians[name]
        cells = [
            "n/a" if row.get(m.key) is None else f"{row[m.key]:,.{m.digits}f}" for m in METRICS
        ]
        style = "bold" if name == "jobmaster" else ("dim" if peers[name].reference else None)
        table.add_row(label, *cells, *([""] if failures else []), style=style)
    best_row, ceiling_row = ratio_cells(medians, peers)
    extra = [""] if failures else []
    if any(best_row):
        table.add_section()
        table.add_row("jobmaster / best peer", *best_row, *extra)
    if any(ceiling_row):
        table.add_row("jobmaster / bare streams", *ceiling_row, *extra)
    console.print(table)
    for note in NOTES:
        text = note.format(
            batch=args.batch,
            samples=args.samples,
            idle_samples=args.idle_samples,
            gap_low=args.idle_gap[0],
            gap_high=args.idle_gap[1],
            seed=args.seed,
        )
        console.print(text, highlight=False, markup=False)
    console.print("settings:", highlight=False)
    for name, peer in peers.items():
        if name in medians or name in failures:
            console.print(
                f"  {peer.name}: {peer.worker_settings}; bulk: {peer.bulk_method}",
                highlight=False,
                markup=False,
            )


def versions(peers: dict[str, Peer]) -> dict[str, str]:
    found: dict[str, str] = {}
    for dist in sorted({d for p in peers.values() for d in p.distributions} | {"redis"}):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


# -- driver ---------------------------------------------------------------------------------------


DEFAULTS = {"jobs": 10_000, "runs": 3, "samples": 500, "idle_samples": 200}
QUICK = {"jobs": 2000, "runs": 1, "samples": 100, "idle_samples": 50}
IDLE_GAP_MS = (50.0, 550.0)
MIN_IDLE_SAMPLES = 20


def gap_range(text: str) -> tuple[float, float]:
    """``--idle-gap MIN,MAX`` in ms."""
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX in ms, got {text!r}") from None
    if not 0 <= low <= high:
        raise argparse.ArgumentTypeError(f"expected 0 <= MIN <= MAX, got {text!r}")
    return low, high


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, help="jobs per phase (default 10000)")
    parser.add_argument("--runs", type=int, help="runs; medians are shown (default 3)")
    parser.add_argument(
        "--samples", type=int, help="back-to-back latency samples per run (default 500)"
    )
    parser.add_argument(
        "--idle-samples", type=int, help="latency samples after an idle gap, per run (200)"
    )
    parser.add_argument(
        "--idle-gap",
        type=gap_range,
        default=IDLE_GAP_MS,
        metavar="MIN,MAX",
        help="range of the idle gaps in ms (50,550)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the idle gaps (0)")
    parser.add_argument("--batch", type=int, default=1000, help="jobs per bulk call (1000)")
    parser.add_argument("--only", metavar="LIB[,LIB]", help=f"a subset of: {', '.join(MODULES)}")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="defaults of 2000 jobs, 1 run, 100 back-to-back and 50 idle samples",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results here")
    args = parser.parse_args()
    for name, default in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.jobs < 1 or args.runs < 1 or args.batch < 1:
        parser.error("--jobs, --runs and --batch must be >= 1")
    if args.samples < 100 or args.idle_samples < MIN_IDLE_SAMPLES:
        parser.error(f"--samples must be >= 100, --idle-samples >= {MIN_IDLE_SAMPLES}")
    args.libraries = list(MODULES)
    if args.only:
        args.libraries = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in args.libraries if n not in MODULES]
        if unknown:
            parser.error(f"unknown librar(ies) {', '.join(unknown)}; known: {', '.join(MODULES)}")
    return args


def short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:200]


def load(names: list[str]) -> tuple[dict[str, Peer], dict[str, str]]:
    """Import each library's module (after ``$BENCH_REDIS_URL`` is set)."""
    peers: dict[str, Peer] = {}
    failures: dict[str, str] = {}
    for name in names:
        try:
            peers[name] = importlib.import_module(MODULES[name]).PEER
        except Exception as exc:
            failures[name] = f"cannot import: {short(exc)}"
    return peers, failures


def main() -> None:
    args = parse_args()
    runs: dict[str, list[dict[str, Any]]] = {}
    errors: dict[str, str] = {}
    with EmbeddedRedis() as server:
        if server.port == 6379:
            raise BenchmarkError("refusing to benchmark on the default Redis port")
        os.environ[URL_ENV] = server.url
        peers, failures = load(args.libraries)
        client = redis.Redis.from_url(server.url)
        redis_version = str(client.info("server")["redis_version"])
        gaps = idle_gaps(args.seed, args.idle_samples, *args.idle_gap)
        for run in range(args.runs):
            for name, peer in peers.items():
                if name in failures:
                    continue
                try:
                    results = one_run(peer, client, server.url, args, gaps)
                except Exception as exc:
                    failures[name] = f"run {run + 1}: {short(exc)}"
                    errors[name] = str(exc)
                    console.print(f"[red]{peer.name} failed[/red]: {exc}", markup=True)
                    continue
                runs.setdefault(name, []).append(results)
                console.print(
                    f"run {run + 1}/{args.runs} {peer.name}: "
                    + ", ".join(
                        f"{m.key} {results[m.key]:,.{m.digits}f}"
                        for m in METRICS
                        if results.get(m.key) is not None
                    ),
                    style="dim",
                    highlight=False,
                )
        client.close()
    medians = {
        name: {m.key: summary(r, m) for m in METRICS}
        for name, r in runs.items()
        if name not in failures
    }
    title = (
        f"no-op jobs, one worker process: {args.jobs:,} jobs, latency samples: "
        f"{args.idle_samples} idle, {args.samples} back to back; medians of {args.runs} run(s)\n"
        f"Redis {redis_version}, Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    show(medians, failures, peers, args, title)
    if args.json is not None:
        report = {
            "redis": redis_version,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "versions": versions(peers),
            "jobs": args.jobs,
            "runs": args.runs,
            "latency_samples": args.samples,
            "idle_samples": args.idle_samples,
            "idle_gap_ms": list(args.idle_gap),
            "seed": args.seed,
            "idle_gaps_ms": [round(gap * 1000, 1) for gap in gaps],
            "batch": args.batch,
            "settings": {
                name: {"worker": p.worker_settings, "bulk": p.bulk_method}
                for name, p in peers.items()
            },
            "medians": medians,
            "per_run": runs,
            "failures": failures,
            "errors": errors,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
