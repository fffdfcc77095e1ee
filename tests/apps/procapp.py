"""An application for tests that run real `jobmaster worker` processes."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from jobmaster import Context, Registry, Retry

registry = Registry()  # JOBMASTER_REDIS_URL is set by the test


@registry.job()
async def add(a: int, b: int) -> int:
    return a + b


@registry.job(retry=Retry(max_attempts=1))
async def sleepy(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@registry.job(retry=Retry(max_attempts=1))
def sync_sleepy(ctx: Context, seconds: float) -> float:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ctx.cancelled.is_set():
            raise RuntimeError("cancelled")
        time.sleep(0.01)
    return seconds


@registry.job(retry=Retry(max_attempts=1))
def explode(message: str) -> None:
    raise ValueError(message)


@registry.job(retry=Retry(max_attempts=1))
def kill_worker() -> None:
    """A poison job: it kills the process that runs it."""
    os.kill(os.getpid(), signal.SIGKILL)


@registry.job(retry=Retry(max_attempts=1))
def spin(seconds: float) -> int:
    """CPU-bound: holds the GIL in pure Python for `seconds`."""
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        count += 1
    return count


@registry.job(retry=Retry(max_attempts=1))
async def record(n: int) -> int:
    return n


@registry.job(retry=Retry(max_attempts=1))
async def work(n: int, ms: float) -> int:
    await asyncio.sleep(ms / 1000)
    return n


@registry.job(executor="process", retry=Retry(max_attempts=2, backoff=0))
def crunch(n: int, fail: bool = False) -> dict[str, int]:
    """CPU-bound, in a child process of its own."""
    if fail:
        raise ArithmeticError(f"cannot crunch {n}")
    total = sum(i * i for i in range(n))
    return {"total": total, "pid": os.getpid()}


@registry.job(executor="process", timeout=0.5, retry=Retry(max_attempts=1))
def crunch_forever(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


@registry.job(retry=Retry(max_attempts=1))
async def beat(label: str = "") -> str:
    """Run by schedules in the schedule tests: its job id carries the tick."""
    return label


@registry.job(executor="process", retry=Retry(max_attempts=1))
def nap_in_process(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@registry.job(retry=Retry(max_attempts=1))
async def block_loop(seconds: float) -> float:
    """An async handler that wrongly blocks its worker's event loop for `seconds`."""
    time.sleep(seconds)  # noqa: ASYNC251 (the fault under test)
    return seconds


@registry.job(retry=Retry(max_attempts=1))
async def chatty(ctx: Context, seconds: float) -> int:
    """Writes a log line every 50 ms for `seconds`; returns how many."""
    lines = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ctx.log.info("working", n=lines)
        lines += 1
        await asyncio.sleep(0.05)
    return lines


LEAKED: list[bytes] = []


@registry.job(retry=Retry(max_attempts=1))
async def leak(megabytes: int, seconds: float = 0.0) -> int:
    """A handler that leaks memory: what it allocates stays referenced for ever."""
    LEAKED.append(b"\x01" * (megabytes * 1024 * 1024))
    await asyncio.sleep(seconds)
    return len(LEAKED)


@registry.job(retry=Retry(max_attempts=3, backoff=0))
def witness(path: str) -> int:
    """Appends the pid of the process that runs it to ``path``: who ran the job, and how often."""
    with open(path, "a") as file:
        file.write(f"{os.getpid()}\n")
    return os.getpid()
