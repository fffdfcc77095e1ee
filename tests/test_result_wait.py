"""Waiting for results: a blocking read of the events stream, not polling; timeouts, many
waiters, unknown jobs, handles found by id."""

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from jobmaster import JobFailed, JobNotFound, JobState, Registry, ResultTimeout, Retry
from jobmaster.testing import run_jobs
from tests.conftest import command_calls, live_worker, wait_until

pytestmark = pytest.mark.deployments


async def test_result_waits_without_polling(registry: Registry, raw_redis: redis.Redis) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    @registry.job()
    async def blocked() -> str:
        started.set()
        await release.wait()
        return "released"

    async with live_worker(registry):
        handle = await blocked.enqueue()
        await wait_until(started.is_set, timeout=5)
        before = command_calls(raw_redis, "hget", "hmget", "hexists")
        waiting = asyncio.create_task(handle.result(timeout=10))
        await asyncio.sleep(1.0)  # the observation window: the job is blocked for 1 s
        reads = command_calls(raw_redis, "hget", "hmget", "hexists") - before
        assert not waiting.done()
        release.set()
        assert await asyncio.wait_for(waiting, 5) == "released"
    assert reads <= 3


async def test_result_times_out(registry: Registry) -> None:
    @registry.job()
    async def never_run() -> None:
        return None

    handle = await never_run.enqueue()  # no worker runs it
    started = time.monotonic()
    with pytest.raises(ResultTimeout):
        await handle.result(timeout=0.2)
    elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 2
    assert (await handle.info()).state is JobState.QUEUED


async def test_result_times_out_while_the_job_runs(registry: Registry) -> None:
    release = asyncio.Event()

    @registry.job()
    async def slow() -> None:
        await release.wait()

    async with live_worker(registry):
        handle = await slow.enqueue()
        await wait_until(lambda: _is_active(handle), timeout=5)
        with pytest.raises(ResultTimeout):
            await handle.result(timeout=0.2)
        release.set()
        await handle.result(timeout=5)


async def _is_active(handle: Any) -> bool:
    return bool(await handle.state() is JobState.ACTIVE)


async def test_many_concurrent_waiters_all_resolve(registry: Registry) -> None:
    @registry.job(retry=Retry(max_attempts=1))
    async def square(n: int) -> int:
        if n % 10 == 9:
            raise ValueError(f"no {n}")
        return n * n

    handles = await square.enqueue_many([(n,) for n in range(100)])

    async def outcome(handle: Any) -> Any:
        try:
            return await handle.result(timeout=30)
        except JobFailed as exc:
            return exc.error_message

    waiting = [asyncio.create_task(outcome(h)) for h in handles]
    await asyncio.sleep(0)  # every waiter starts waiting before any job runs
    started = time.monotonic()
    async with live_worker(registry):
        done = await asyncio.wait_for(asyncio.gather(*waiting), 10)
        # Resolved by the events they were waiting for, not by a periodic re-check.
        assert time.monotonic() - started < 3
        # And waiters that join while the worker is running.
        more = await square.enqueue_many([(n,) for n in range(100, 200)])
        started = time.monotonic()
        done += await asyncio.wait_for(asyncio.gather(*(outcome(h) for h in more)), 10)
        assert time.monotonic() - started < 3
    assert done == [n * n if n % 10 != 9 else f"no {n}" for n in range(200)]


async def test_waiting_for_an_unknown_job(registry: Registry) -> None:
    @registry.job()
    async def noop() -> None:
        return None

    await noop.enqueue()  # the queue exists; this job does not
    started = time.monotonic()
    with pytest.raises(JobNotFound):
        await registry.handle("no-such-job", "default").result(timeout=5)
    assert time.monotonic() - started < 2
    with pytest.raises(JobNotFound):
        await registry.handle("no-such-job", "nowhere").result(timeout=5)
    with pytest.raises(JobNotFound):
        await registry.find("no-such-job")
    with pytest.raises(JobNotFound):
        await registry.get_job("no-such-job")


async def test_a_handle_found_by_id(registry: Registry, redis_url: str, tmp_path: Path) -> None:
    @registry.job()
    async def pair(a: int, b: int) -> tuple[int, int]:
        return (b, a)

    handle = await pair.options(queue="other").enqueue(1, 2)
    found = await registry.find(handle.id)
    assert (found.id, found.queue) == (handle.id, "other")

    async with live_worker(registry, queues=["other"]):
        # The result is decoded with the handler's return type, as with the original handle.
        assert await found.result(timeout=5) == (2, 1)
    job = await found.info()
    assert job.state is JobState.SUCCEEDED
    assert job.arguments == {"a": 1, "b": 2}

    # Another process that does not define the job still gets the stored result.
    elsewhere = Registry(redis_url, config_dir=tmp_path, environ={})
    try:
        assert await (await elsewhere.find(handle.id)).result(timeout=5) == [2, 1]
        assert (await elsewhere.get_job(handle.id)).id == handle.id
    finally:
        await elsewhere.aclose()


async def test_closing_right_after_a_result_is_prompt(registry: Registry) -> None:
    @registry.job()
    async def noop() -> int:
        return 1

    handle = await noop.enqueue()
    await run_jobs(registry)
    assert await handle.result(timeout=5) == 1  # the job had already finished
    started = time.monotonic()
    await registry.aclose()
    assert time.monotonic() - started < 1


async def test_closing_right_after_a_waited_result_is_prompt(registry: Registry) -> None:
    release = asyncio.Event()

    @registry.job()
    async def held() -> int:
        await release.wait()
        return 2

    async with live_worker(registry):
        for _ in range(3):
            handle = await held.enqueue()
            waiting = asyncio.create_task(handle.result(timeout=5))
            await wait_until(lambda h=handle: _is_active(h), timeout=5)
            release.set()
            assert await waiting == 2  # resolved by the events reader
            release.clear()
            started = time.monotonic()
            await registry.aclose()  # stops the reader, whatever it is doing
            assert time.monotonic() - started < 1
