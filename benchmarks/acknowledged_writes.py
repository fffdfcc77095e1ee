"""What ``min_replicas_acked`` costs a producer: enqueues per second on a master with one
replica (private servers on loopback), without it and with it.

Three ways of enqueueing, each for ``--seconds``: one ``await enqueue()`` at a time, 50
concurrent ``enqueue()`` calls of one event loop (pipelined on its one connection), and
``enqueue_sync()`` from one thread.

    .venv/bin/python benchmarks/acknowledged_writes.py --seconds 3
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from jobmaster import Registry  # noqa: E402
from jobmaster.embedded import EmbeddedRedis  # noqa: E402


async def rate(seconds: float, step: Callable[[], Awaitable[int]]) -> float:
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        done += await step()
    return done / elapsed


async def measure(url: str, acked: int, seconds: float) -> list[float]:
    registry = Registry(url, environ={}, min_replicas_acked=acked, namespace=f"bench{acked}")

    @registry.job()
    async def noop() -> None: ...

    async def one() -> int:
        await noop.enqueue()
        return 1

    async def fifty() -> int:
        await asyncio.gather(*(noop.enqueue() for _ in range(50)))
        return 50

    async def sync_one() -> int:
        noop.enqueue_sync()
        return 1

    rates = [await rate(seconds, one), await rate(seconds, fifty)]
    rates.append(await asyncio.to_thread(asyncio.run, rate(seconds, sync_one)))
    await registry.aclose()
    registry.close()
    return rates


def wait_for_sync(port: int) -> None:
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while client.info("replication").get("slave0", {}).get("state") != "online":
        if time.monotonic() > deadline:
            raise SystemExit("the replica did not sync")
        time.sleep(0.05)
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    seconds = parser.parse_args().seconds
    with EmbeddedRedis(options=["--repl-diskless-sync-delay", "0"]) as master:
        of_master = ["--replicaof", "127.0.0.1", str(master.port)]
        with EmbeddedRedis(options=of_master):
            wait_for_sync(master.port)
            print(
                f"{'min_replicas_acked':>18} {'one at a time':>14} {'50 at once':>11} {'sync':>8}"
            )
            for acked in (0, 1):
                one, fifty, sync = asyncio.run(measure(master.url, acked, seconds))
                print(f"{acked:>18} {one:>14,.0f} {fifty:>11,.0f} {sync:>8,.0f}  jobs/s")


if __name__ == "__main__":
    main()
