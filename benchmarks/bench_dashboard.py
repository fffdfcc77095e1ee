"""How long the dashboard's pages take with 100,000 jobs in Redis.

On a private redis-server (a free loopback port, a temporary directory):

1. fill: ``enqueue_many`` in batches of 1,000 into the ``bulk`` queue; a burst worker (in
   this process) runs 60% of the jobs, one in ten of which fails with a traceback; of the
   rest, most stay queued and some are delayed by an hour (scheduled). A small ``mail``
   queue, 20 schedules and two live workers (each a process of its own) fill the other pages;
2. serve: ``python -m jobmaster_dashboard --redis-url ...`` (uvicorn, one process) on
   another free loopback port, with a token;
3. time: each page is requested ``--requests`` times (after two unmeasured ones) by one
   sequential HTTP client with the token; the time is the client's, request sent to body
   read. Redis commands per request come from ``INFO commandstats`` around each page.

Usage (from the repository root)::

    python benchmarks/bench_dashboard.py [--jobs N] [--requests N] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
from rich.console import Console
from rich.table import Table

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path[:0] = [str(REPO_ROOT)]

import jobmaster  # noqa: E402
from jobmaster import JobState, Registry, Retry  # noqa: E402
from jobmaster.embedded import EmbeddedRedis, free_port  # noqa: E402
from jobmaster.worker import Worker  # noqa: E402

QUEUE = "bulk"
BATCH = 1000
PROCESSED_SHARE = 0.6
"""Share of the jobs a burst worker runs before the pages are timed."""
SCHEDULED_SHARE = 0.05
"""Share of the jobs enqueued with a delay of an hour (they stay scheduled)."""
FAIL_EVERY = 10
"""One job in this many fails (with a traceback) when it runs."""
TOKEN = "bench-dashboard-token"
TARGET_MS = 100.0

console = Console()


class BenchmarkError(RuntimeError):
    """Something did not happen as it should: the figures would be meaningless."""


def make_registry(url: str) -> Registry:
    registry = Registry(url, environ={})

    @registry.job(queue=QUEUE, retry=Retry(max_attempts=1))
    async def crunch(n: int, label: str) -> dict[str, int]:
        if n % FAIL_EVERY == 0:
            raise ValueError(f"cannot crunch {label}: {n} is a multiple of {FAIL_EVERY}")
        return {"n": n, "square": n * n}

    @registry.job(queue="mail")
    async def notify(to: str) -> str:
        return to

    return registry


# -- filling Redis --------------------------------------------------------------------------------


async def fill(url: str, jobs: int) -> dict[str, int]:
    """Enqueue ``jobs`` jobs, run a share of them, leave the others queued or scheduled."""
    processed = int(jobs * PROCESSED_SHARE)
    scheduled = int(jobs * SCHEDULED_SHARE)
    async with make_registry(url) as registry:
        crunch, notify = registry.get("crunch"), registry.get("notify")
        started = time.perf_counter()
        await _enqueue(crunch, range(processed))
        enqueued_s = time.perf_counter() - started
        worker = Worker(
            registry, queues=[QUEUE], burst=True, install_signal_handlers=False, echo_job_logs=False
        )
        started = time.perf_counter()
        await worker.run()
        worked_s = time.perf_counter() - started
        await _enqueue(crunch, range(processed, jobs - scheduled))
        delayed = crunch.options(delay=3600)
        await _enqueue(delayed, range(jobs - scheduled, jobs))
        await notify.enqueue_many([(f"user{i}@example.com",) for i in range(200)])
        for i in range(20):
            await registry.add_schedule(
                f"report-{i:02}", "notify", cron=f"{i} 3 * * *", args={"to": f"ops{i}@example.com"}
            )
        counts = await registry.count_jobs(QUEUE)
    expected_failed = len(range(0, processed, FAIL_EVERY))
    if counts[JobState.FAILED] != expected_failed or sum(counts.values()) != jobs:
        raise BenchmarkError(f"unexpected counts after the fill: {counts}")
    console.print(
        f"filled {jobs:,} jobs: enqueue {enqueued_s:.1f} s for {processed:,}, "
        f"burst worker {worked_s:.1f} s ({processed / worked_s:,.0f} jobs/s)"
    )
    return {state.value: n for state, n in counts.items()}


async def _enqueue(handler: Any, numbers: range) -> None:
    for first in range(numbers.start, numbers.stop, BATCH):
        batch = range(first, min(first + BATCH, numbers.stop))
        await handler.enqueue_many([(n, f"item-{n:06}") for n in batch])


async def sample_ids(url: str) -> dict[str, str]:
    async with make_registry(url) as registry:
        failed = await registry.list_jobs(QUEUE, JobState.FAILED, limit=1)
        succeeded = await registry.list_jobs(QUEUE, JobState.SUCCEEDED, limit=1)
    return {"failed": failed[0].id, "succeeded": succeeded[0].id}


# -- processes ------------------------------------------------------------------------------------


def child_env(url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env["JOBMASTER_REDIS_URL"] = url
    env["JOBMASTER_DASHBOARD_TOKEN"] = TOKEN
    return env


@contextmanager
def process(command: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """A child process, interrupted at the end; its output is shown if the block fails."""
    with tempfile.TemporaryFile() as output:
        child = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=output, stderr=output)
        try:
            yield child
        except BaseException:
            output.seek(0)
            console.print(output.read().decode(errors="replace")[-3000:], markup=False)
            raise
        finally:
            child.send_signal(signal.SIGINT)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def idle_workers(url: str, count: int) -> list[list[str]]:
    """Commands for live workers on a queue with nothing in it (they only heartbeat)."""
    code = (
        "import asyncio, sys; from jobmaster import Registry; from jobmaster.worker import Worker;"
        "r = Registry(sys.argv[1], environ={});"
        "asyncio.run(Worker(r, queues=['idle'], concurrency=10, echo_job_logs=False).run())"
    )
    return [[sys.executable, "-c", code, url] for _ in range(count)]


def wait_for_server(client: httpx.Client, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise BenchmarkError(f"the dashboard exited with {server.returncode}")
        try:
            if client.get("/login").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise BenchmarkError("the dashboard did not answer within 30 s")


# -- timing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageTiming:
    page: str
    path: str
    median_ms: float
    p95_ms: float
    max_ms: float
    kib: float
    redis_calls: float


def percentile(samples: list[float], pct: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]


def redis_calls(client: redis.Redis) -> int:
    stats: Any = client.info("commandstats")
    return sum(int(v["calls"]) for name, v in stats.items() if name != "cmdstat_info")


def time_page(
    client: httpx.Client, raw: redis.Redis, page: str, path: str, requests: int
) -> PageTiming:
    """``requests`` timed GETs of one page; a find by id answers a redirect (303)."""
    expected = 303 if path.startswith("/jobs?id=") else 200
    for _ in range(2):
        client.get(path)
    samples: list[float] = []
    size = 0
    before = redis_calls(raw)
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != expected:
            raise BenchmarkError(f"{path} answered {response.status_code}: {response.text[:300]}")
        size = len(response.content)
    calls = (redis_calls(raw) - before) / requests
    return PageTiming(
        page,
        path,
        statistics.median(samples),
        percentile(samples, 95),
        max(samples),
        size / 1024,
        calls,
    )


def pages(ids: dict[str, str], jobs: int) -> list[tuple[str, str]]:
    deep = max(1, int(jobs * PROCESSED_SHARE * 0.9) // 50 // 2)
    return [
        ("overview", "/"),
        ("jobs: queued", f"/jobs?queue={QUEUE}&state=queued"),
        ("jobs: scheduled", f"/jobs?queue={QUEUE}&state=scheduled"),
        ("jobs: succeeded", f"/jobs?queue={QUEUE}&state=succeeded"),
        (f"jobs: succeeded, page {deep}", f"/jobs?queue={QUEUE}&state=succeeded&page={deep}"),
        ("jobs: failed", f"/jobs?queue={QUEUE}&state=failed"),
        ("job: failed, traceback", f"/job?queue={QUEUE}&id={ids['failed']}"),
        ("job: succeeded", f"/job?queue={QUEUE}&id={ids['succeeded']}"),
        ("find a job by id (303)", f"/jobs?id={ids['succeeded']}"),
        ("failed", "/failed"),
        ("workers", "/workers"),
        ("schedules", "/schedules"),
    ]


def show(timings: list[PageTiming], title: str) -> None:
    table = Table(title=title)
    for column in ("page", "median ms", "p95 ms", "max ms", "KiB", "Redis calls"):
        table.add_column(column, justify="left" if column == "page" else "right")
    for t in timings:
        style = "red" if t.p95_ms > TARGET_MS else None
        table.add_row(
            t.page,
            f"{t.median_ms:.1f}",
            f"{t.p95_ms:.1f}",
            f"{t.max_ms:.1f}",
            f"{t.kib:.1f}",
            f"{t.redis_calls:.0f}",
            style=style,
        )
    console.print(table)
    slow = [t.page for t in timings if t.p95_ms > TARGET_MS]
    if slow:
        console.print(f"over {TARGET_MS:.0f} ms at p95: {', '.join(slow)}", style="red")
    else:
        console.print(f"every page under {TARGET_MS:.0f} ms at p95")


# -- driver ---------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs in Redis (100000)")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per page (20)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results here")
    args = parser.parse_args()
    if args.jobs < 1000 or args.requests < 5:
        parser.error("--jobs must be >= 1000 and --requests >= 5")
    return args


def main() -> None:
    args = parse_args()
    with EmbeddedRedis() as server:
        if server.port == 6379:
            raise BenchmarkError("refusing to benchmark on the default Redis port")
        raw = redis.Redis.from_url(server.url)
        server_info: Any = raw.info("server")
        redis_version = str(server_info["redis_version"])
        with console.status(f"filling Redis with {args.jobs:,} jobs"):
            counts = asyncio.run(fill(server.url, args.jobs))
        ids = asyncio.run(sample_ids(server.url))
        port = free_port()
        serve = [sys.executable, "-m", "jobmaster_dashboard", "--redis-url", server.url]
        env = child_env(server.url)
        with (
            process([*serve, "--port", str(port)], env) as dashboard,
            process(idle_workers(server.url, 2)[0], env),
            process(idle_workers(server.url, 2)[1], env),
            httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"authorization": f"Bearer {TOKEN}", "accept": "text/html"},
                timeout=30,
            ) as client,
        ):
            wait_for_server(client, dashboard)
            deadline = time.monotonic() + 20
            while client.get("/workers").text.count("<td>idle</td>") < 2:
                if time.monotonic() > deadline:
                    raise BenchmarkError("the idle workers did not show up on /workers")
                time.sleep(0.1)
            timings = []
            for page, path in pages(ids, args.jobs):
                with console.status(f"timing {page}"):
                    timings.append(time_page(client, raw, page, path, args.requests))
        raw.close()
    states = ", ".join(f"{n:,} {state}" for state, n in counts.items() if n)
    title = (
        f"dashboard pages, {args.jobs:,} jobs ({states})\n{args.requests} requests each; "
        f"jobmaster {jobmaster.__version__}, Redis {redis_version}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    show(timings, title)
    if args.json is not None:
        report = {
            "jobs": args.jobs,
            "requests": args.requests,
            "counts": counts,
            "redis": redis_version,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "pages": [asdict(t) for t in timings],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
