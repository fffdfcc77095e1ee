"""Jobs that a stretch of Redis full (maxmemory reached, noeviction) fails or runs twice.

Enqueues 420 jobs of tests/apps/procapp.py's `chatty` (400 of 1 s, 20 of 8 s, all writing a
log line every 50 ms), runs one worker process (50 at a time, lease 3 s) on a private
redis-server, sets `maxmemory 1` two seconds in for `--seconds`, then lifts it and waits for
every job to end.

    .venv/bin/python benchmarks/redis_full.py --seconds 100
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from jobmaster import AttemptOutcome, JobState  # noqa: E402
from jobmaster.embedded import EmbeddedRedis  # noqa: E402


async def measure(full_seconds: float) -> str:
    with EmbeddedRedis() as server:
        os.environ["JOBMASTER_REDIS_URL"] = server.url
        from apps import procapp

        registry = procapp.registry
        chatty = registry.get("chatty")
        handles = await chatty.enqueue_many([(1.0,)] * 400) + await chatty.enqueue_many(
            [(8.0,)] * 20
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
        command = ["worker", "apps.procapp:registry", "--concurrency", "50", "--lease", "3"]
        worker = subprocess.Popen(  # noqa: ASYNC220 (a driver script, nothing else runs)
            [sys.executable, "-m", "jobmaster.cli", *command],
            cwd=ROOT / "tests",
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(server.url)
        await asyncio.sleep(2)
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)
        await asyncio.sleep(full_seconds)
        client.config_set("maxmemory", 0)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            counts = await registry.count_jobs("default")
            if counts[JobState.SUCCEEDED] + counts[JobState.FAILED] == len(handles):
                break
            await asyncio.sleep(0.5)
        counts = await registry.count_jobs("default")
        lost = twice = 0
        for handle in handles:
            job = await handle.info()
            lost += sum(a.outcome is AttemptOutcome.LOST for a in job.attempts)
            twice += len(job.attempts) > 1
        worker.terminate()
        worker.wait(30)
        client.close()
        await registry.aclose()
        return (
            f"Redis full for {full_seconds:g} s: {counts[JobState.SUCCEEDED]} succeeded, "
            f"{counts[JobState.FAILED]} failed, {lost} lost attempts, {twice} jobs run more "
            f"than once (of {len(handles)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="how long Redis is full")
    print(asyncio.run(measure(parser.parse_args().seconds)))


if __name__ == "__main__":
    main()
