"""The bare-streams reference: no job semantics, just redis-py on one stream.

Producer: ``XADD`` one at a time, or pipelined ``XADD`` s (one pipeline per batch).
Consumer (run as ``python -m peers.streams_app [--burst]``): ``XREADGROUP COUNT 100``, and
the ``XACK`` of each batch pipelined with the next read; it counts entries in memory and
writes the count at the end, so the driver measures it like the job queues. Its processing
rate is the practical ceiling of a stream-based queue on this machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

import redis

from peers.common import (
    DONE_KEY,
    FIRST_KEY,
    JOBS_ENV,
    LAST_KEY,
    LATENCY_KEY,
    Peer,
    batches,
    latency_loop,
    redis_url,
    time_calls,
)

STREAM = "bench:stream"
GROUP = "bench"
COUNT = 100
BLOCK_MS = 1000


def _client(url: str) -> redis.Redis:
    client = redis.Redis.from_url(url)
    # Consumers read from the group's start: what is added before they start counts too.
    try:
        client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    return client


def enqueue_single(url: str, jobs: int) -> float:
    client = _client(url)
    try:
        return time_calls(jobs, lambda: client.xadd(STREAM, {"t": "0"}))
    finally:
        client.close()


def enqueue_bulk(url: str, jobs: int, batch: int) -> float:
    client = _client(url)
    try:
        started = time.perf_counter()
        for size in batches(jobs, batch):
            pipe = client.pipeline(transaction=False)
            for _ in range(size):
                pipe.xadd(STREAM, {"t": "0"})
            pipe.execute()
        return time.perf_counter() - started
    finally:
        client.close()


def consume(url: str, *, burst: bool) -> None:
    """Read, ack and count until the stream is empty (burst) or forever.

    Like the job queues' handlers, it counts in memory, sets ``bench:first`` when it reads
    the first entry, and ``bench:last`` and ``bench:done`` once the count reaches
    ``$BENCH_JOBS``.
    """
    client = _client(url)
    consumer = f"c{os.getpid()}"
    block = None if burst else BLOCK_MS
    expected = int(os.environ.get(JOBS_ENV, "0"))
    done: list[bytes] = []
    stamped: list[str] = []
    count = 0
    first = True
    while True:
        pipe = client.pipeline(transaction=False)
        if done:
            pipe.xack(STREAM, GROUP, *done)
        pipe.xreadgroup(GROUP, consumer, {STREAM: ">"}, count=COUNT, block=block)
        replies = pipe.execute()
        if done and not stamped:
            count += len(done)
            if count >= expected:
                client.mset({LAST_KEY: repr(time.time()), DONE_KEY: count})
        entries = replies[-1][0][1] if replies[-1] else []
        if not entries and burst:
            return
        started = repr(time.time())
        done = [entry_id for entry_id, _ in entries]
        stamped = [f"{f[b't'].decode()} {started}" for _, f in entries if f[b"t"] != b"0"]
        if stamped:  # latency samples: reported at once, not with the next read
            client.lpush(LATENCY_KEY, *stamped)
        elif first and entries:
            client.set(FIRST_KEY, started)
            first = False


def worker_command(url: str, burst: bool) -> list[str]:
    command = [sys.executable, "-m", "peers.streams_app"]
    return [*command, "--burst"] if burst else command


def latency(url: str, gaps: Sequence[float]) -> list[float]:
    client = _client(url)
    try:
        return latency_loop(url, gaps, lambda t: client.xadd(STREAM, {"t": repr(t)}))
    finally:
        client.close()


PEER = Peer(
    name="bare streams",
    distributions=("redis",),
    enqueue_single=enqueue_single,
    enqueue_bulk=enqueue_bulk,
    bulk_method="XADD pipelined (one pipeline per batch)",
    worker_command=worker_command,
    burst=True,
    worker_settings="XREADGROUP COUNT 100, XACK pipelined with the next read",
    latency=latency,
    reference=True,
)


def main() -> None:
    parser = argparse.ArgumentParser(description="the bare-streams consumer")
    parser.add_argument("--burst", action="store_true", help="stop once the stream is empty")
    consume(redis_url(), burst=parser.parse_args().burst)


if __name__ == "__main__":
    main()
