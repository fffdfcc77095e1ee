"""What every library's module shares: the Redis keys the no-op handlers write, the handler
body itself (sync and async twins), timing and latency loops, and the :class:`Peer` record.

Every worker process reads ``BENCH_REDIS_URL`` (the private redis-server) and ``BENCH_JOBS``
(how many jobs the processing phase expects) from its environment.

The no-op handler takes one float, ``t``:

* ``t == 0`` (processing): it counts itself in the worker process's memory (no Redis call:
  the job is a no-op, and what is measured is the library); the first job also
  ``SET bench:first`` to the time it started, and the job that brings the count to
  ``BENCH_JOBS`` sets ``bench:last`` to the time it ended and ``bench:done`` to the count
  (runs after that, duplicates, ``INCR bench:done``);
* ``t > 0`` (latency): ``LPUSH bench:latency "t started"``, ``t`` being the producer's
  ``time.time()`` just before it enqueued the job and ``started`` the handler's.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis
import redis.asyncio as aioredis

DONE_KEY = "bench:done"
FIRST_KEY = "bench:first"
LAST_KEY = "bench:last"
LATENCY_KEY = "bench:latency"

URL_ENV = "BENCH_REDIS_URL"
JOBS_ENV = "BENCH_JOBS"

LATENCY_WARMUP = 10
"""Round trips before the latency samples (after the first, which waits for the worker)."""
FIRST_JOB_TIMEOUT = 60.0
"""Longest wait for the first latency job: it includes the worker's start-up."""
SAMPLE_TIMEOUT = 10.0
"""Longest wait for one latency job once the worker is up."""


def redis_url() -> str:
    """The private redis-server's URL, set by the benchmark for itself and its workers."""
    url = os.environ.get(URL_ENV)
    if not url:
        raise RuntimeError(f"${URL_ENV} is not set: run this through benchmarks/bench_peers.py")
    return url


def console_script(name: str) -> str:
    """A command installed next to the running interpreter (the benchmark's virtualenv)."""
    return str(Path(sys.executable).parent / name)


# -- the handler's body ---------------------------------------------------------------------------

_sync_client: redis.Redis | None = None
_async_client: aioredis.Redis | None = None
_expected = int(os.environ.get(JOBS_ENV, "0"))


_count = 0
"""Processing jobs this worker process ran (the handlers count themselves in memory)."""


def record(t: float) -> None:
    """The no-op handler of the synchronous libraries."""
    global _sync_client, _count
    started = time.time()
    if _sync_client is None:  # created lazily: after any fork of the worker process
        _sync_client = redis.Redis.from_url(redis_url())
    if t > 0:
        _sync_client.lpush(LATENCY_KEY, f"{t!r} {started!r}")
        return
    _count += 1
    if _count == 1:
        _sync_client.set(FIRST_KEY, repr(started))
    if _count == _expected:
        _sync_client.mset({LAST_KEY: repr(time.time()), DONE_KEY: _count})
    elif _count > _expected:
        _sync_client.incr(DONE_KEY)


async def record_async(t: float) -> None:
    """The no-op handler of the asyncio libraries: :func:`record` on an asyncio client."""
    global _async_client, _count
    started = time.time()
    if _async_client is None:  # one event loop per worker process
        _async_client = aioredis.Redis.from_url(redis_url())
    if t > 0:
        await _async_client.lpush(LATENCY_KEY, f"{t!r} {started!r}")
        return
    _count += 1
    if _count == 1:
        await _async_client.set(FIRST_KEY, repr(started))
    if _count == _expected:
        await _async_client.mset({LAST_KEY: repr(time.time()), DONE_KEY: _count})
    elif _count > _expected:
        await _async_client.incr(DONE_KEY)


# -- the producer's side --------------------------------------------------------------------------


def time_calls(jobs: int, call: Callable[[], object]) -> float:
    """Seconds taken by ``jobs`` calls of ``call``, one after the other."""
    started = time.perf_counter()
    for _ in range(jobs):
        call()
    return time.perf_counter() - started


async def time_calls_async(jobs: int, call: Callable[[], Awaitable[object]]) -> float:
    """Seconds taken by ``jobs`` awaited calls of ``call``, one after the other."""
    started = time.perf_counter()
    for _ in range(jobs):
        await call()
    return time.perf_counter() - started


def batches(jobs: int, size: int) -> list[int]:
    """The sizes of the bulk calls that enqueue ``jobs`` jobs, ``size`` at most each."""
    return [min(size, jobs - first) for first in range(0, jobs, size)]


class LatencyError(RuntimeError):
    """A latency job did not run in time, or reported another job's timestamp."""


def _latency(t: float, reply: tuple[bytes, bytes] | list[bytes] | None, wait: float) -> float:
    if reply is None:
        raise LatencyError(f"no latency job ran within {wait:g}s")
    sent, started = reply[1].decode().split()
    if float(sent) != t:
        raise LatencyError(f"expected the job sent at {t!r}, got {sent}")
    return float(started) - t


def latency_loop(
    url: str, gaps: Sequence[float], enqueue: Callable[[float], object]
) -> list[float]:
    """Enqueue one job, wait for its handler to start, once per gap; seconds each.

    Each sample first leaves the worker idle for its gap (seconds; 0: the next job goes out
    the moment the last one started). The first job, which waits for the worker to start,
    and ``LATENCY_WARMUP`` more go out back to back and are not counted.
    """
    client = redis.Redis.from_url(url)
    try:
        timings: list[float] = []
        for i, gap in enumerate(_with_warmup(gaps)):
            if gap > 0:
                time.sleep(gap)
            wait = FIRST_JOB_TIMEOUT if i == 0 else SAMPLE_TIMEOUT
            t = time.time()
            enqueue(t)
            elapsed = _latency(t, client.brpop([LATENCY_KEY], timeout=wait), wait)
            if i > LATENCY_WARMUP:
                timings.append(elapsed)
        return timings
    finally:
        client.close()


async def latency_loop_async(
    url: str, gaps: Sequence[float], enqueue: Callable[[float], Awaitable[object]]
) -> list[float]:
    """:func:`latency_loop` for the asyncio libraries: every call in one event loop (the
    gaps are ``asyncio.sleep``s, during which the producer's loop runs as in an application)."""
    client = aioredis.Redis.from_url(url)
    try:
        timings: list[float] = []
        for i, gap in enumerate(_with_warmup(gaps)):
            if gap > 0:
                await asyncio.sleep(gap)
            wait = FIRST_JOB_TIMEOUT if i == 0 else SAMPLE_TIMEOUT
            t = time.time()
            await enqueue(t)
            reply = await client.brpop([LATENCY_KEY], timeout=wait)
            elapsed = _latency(t, reply, wait)
            if i > LATENCY_WARMUP:
                timings.append(elapsed)
        return timings
    finally:
        await client.aclose()


def _with_warmup(gaps: Sequence[float]) -> list[float]:
    return [0.0] * (1 + LATENCY_WARMUP) + list(gaps)


# -- what the driver knows about a library ------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """One library under test, as the driver sees it.

    Args:
        name: the library's name in the table.
        distributions: PyPI distributions whose versions the report lists.
        enqueue_single: ``(url, jobs) -> seconds`` enqueueing ``jobs`` no-op jobs one at a time.
        enqueue_bulk: ``(url, jobs, batch) -> seconds`` with the library's bulk API, or None.
        bulk_method: how the bulk enqueue is done (or why there is none).
        worker_command: ``(url, burst) -> argv`` of one worker process.
        burst: whether the processing worker stops by itself once the queue is empty.
        worker_settings: the worker's settings, as the report states them.
        latency: ``(url, gaps) -> seconds`` from enqueue to handler start, one sample per
            gap, each after the worker was left idle for its gap (seconds; 0: back to back):
            :func:`latency_loop` or :func:`latency_loop_async`.
    """

    name: str
    distributions: tuple[str, ...]
    enqueue_single: Callable[[str, int], float]
    enqueue_bulk: Callable[[str, int, int], float] | None
    bulk_method: str
    worker_command: Callable[[str, bool], list[str]]
    burst: bool
    worker_settings: str
    latency: Callable[[str, Sequence[float]], list[float]]
    reference: bool = False
    """Not a job queue: the bare-streams ceiling, kept out of the "best peer" comparison."""
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment variables of the worker process."""
