"""Processing on a local 3-master Redis Cluster against one redis-server, with 1, 2 and 3
queues (the queues' slots on different masters), and the Redis CPU each master spent.

Each configuration enqueues ``--jobs`` no-op jobs spread evenly over its queues, then runs
one burst worker process per queue and times them from start to the last exit. Redis's own
CPU time per job is read from ``INFO cpu`` (``used_cpu_user + used_cpu_sys``) of each master
before and after: on a machine with few cores the processes saturate it and wall-clock rates
cannot show the scaling, but the CPU per master can (each master serves only its queues).

    scripts/bench --cluster [--jobs N] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from jobmaster import Registry
from jobmaster.embedded import EmbeddedRedis
from jobmaster.embedded_cluster import ClusterNode, EmbeddedCluster
from jobmaster.transport.cluster import slot_of

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
QUEUES = ["q0", "q1", "q2"]
"""Queue names whose slots fall on the first, second and third master of a fresh cluster."""
APP = "cluster_app:registry"


def redis_cpu(node: ClusterNode) -> float:
    """Seconds of CPU the server has used (user + system)."""
    text = node.command("INFO", "cpu").decode()
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"])


async def enqueue(url: str, queues: list[str], jobs: int) -> None:
    registry = Registry(url, environ={})
    from cluster_app import declare

    noop = declare(registry)
    per_queue = jobs // len(queues)
    for queue in queues:
        for first in range(0, per_queue, 5000):
            count = min(5000, per_queue - first)
            await noop.options(queue=queue).enqueue_many([()] * count)
    await registry.aclose()
    registry.close()


async def enqueue_one_at_a_time(url: str, jobs: int, *, redis_py: bool) -> float:
    """Jobs per second enqueued one call at a time, on the fast path (one multiplexed
    connection per master) or through redis-py's cluster client alone."""
    from jobmaster.transport.clients import async_client

    registry = Registry(url, environ={})
    if redis_py:
        registry.redis_factory = lambda: async_client(url)
    from cluster_app import declare

    noop = declare(registry).options(queue=QUEUES[0])
    await noop.enqueue()  # connections open, scripts loaded
    started = time.perf_counter()
    for _ in range(jobs):
        await noop.enqueue()
    rate = jobs / (time.perf_counter() - started)
    await registry.aclose()
    registry.close()
    return rate


def run_workers(url: str, queues: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(BENCH_DIR)]))
    env["JOBMASTER_REDIS_URL"] = url
    command = [sys.executable, "-m", "jobmaster.cli", "--log-level", "warning", "worker", APP]
    started = time.perf_counter()
    workers = [
        subprocess.Popen(
            [*command, "--queues", queue, "--burst", "--concurrency", "100"],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for queue in queues
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=600)
        if worker.returncode != 0:
            raise RuntimeError(f"a worker exited with {worker.returncode}:\n{err[-2000:]}")
    return time.perf_counter() - started


def measure(url: str, masters: list[ClusterNode], queues: list[str], jobs: int) -> dict[str, Any]:
    asyncio.run(enqueue(url, queues, jobs))
    before = [redis_cpu(m) for m in masters]
    wall = run_workers(url, queues)
    spent = [redis_cpu(m) - b for m, b in zip(masters, before, strict=True)]
    done = jobs // len(queues) * len(queues)
    return {
        "queues": len(queues),
        "jobs": done,
        "jobs_per_s": done / wall,
        "redis_cpu_us_per_job": [s / done * 1e6 for s in spent],
        "redis_cpu_us_per_job_sum": sum(spent) / done * 1e6,
        "busiest_master_cpu_s": max(spent),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=30_000, help="jobs per configuration")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results here")
    args = parser.parse_args()
    results: dict[str, list[dict[str, Any]]] = {"server": [], "cluster": []}
    with ExitStack() as stack:
        server = stack.enter_context(EmbeddedRedis())
        single = ClusterNode(server.binary, server.directory, server.port)
        cluster = stack.enter_context(EmbeddedCluster())
        masters = cluster.masters_now()
        owners = {cluster.master_of(slot_of(f"{{{q}}}")).port for q in QUEUES}
        assert len(owners) == 3, "the queues' slots should fall on three masters"
        for count in (1, 2, 3):
            queues = QUEUES[:count]
            for name, url, nodes in (
                ("server", server.url, [single]),
                ("cluster", cluster.url, masters),
            ):
                figures = measure(url, nodes, queues, args.jobs)
                results[name].append(figures)
                per_master = " + ".join(f"{c:.1f}" for c in figures["redis_cpu_us_per_job"])
                print(
                    f"{name:8} {count} queue(s): {figures['jobs_per_s']:8.0f} jobs/s, "
                    f"Redis CPU per job {per_master} = "
                    f"{figures['redis_cpu_us_per_job_sum']:.1f} us, busiest Redis "
                    f"{figures['busiest_master_cpu_s']:.2f} s",
                    flush=True,
                )
                _flush(url)
        for redis_py in (False, True):
            rate = asyncio.run(enqueue_one_at_a_time(cluster.url, 5000, redis_py=redis_py))
            path = "redis-py's RedisCluster" if redis_py else "fast path"
            results.setdefault("enqueue_one_at_a_time", []).append({"path": path, "rate": rate})
            print(f"cluster enqueue, one call at a time, {path}: {rate:.0f} jobs/s", flush=True)
            _flush(cluster.url)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _flush(url: str) -> None:
    """Empty the deployment between configurations (finished jobs are kept otherwise)."""
    from jobmaster.transport.clients import sync_client

    client = sync_client(url, 10.0)
    try:
        if hasattr(client, "get_primaries"):
            for node in client.get_primaries():
                client.flushall(target_nodes=node)  # type: ignore[call-arg]
        else:
            client.flushall()
    finally:
        client.close()


if __name__ == "__main__":
    main()
