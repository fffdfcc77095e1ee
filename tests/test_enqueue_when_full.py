"""A Redis out of memory (maxmemory reached, noeviction) refuses writes: every writing call
raises RedisFull, a RedisUnavailable and a redis-py ResponseError, and an enqueue_many says
which of its jobs were written, so that a retry does not duplicate them.

Each test runs a redis-server of its own, filled by lowering its maxmemory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.exceptions

from jobmaster import (
    CancelOutcome,
    JobHandler,
    JobState,
    RedisFull,
    RedisUnavailable,
    Registry,
    Retry,
)
from jobmaster.embedded import EmbeddedRedis
from jobmaster.store import ENQUEUE_CHUNK
from jobmaster.testing import run_jobs

CALLS = 5000
TEXT = "x" * 1000  # about 1.5 KB of Redis memory per job: 5,000 of them need ~7 MB


@pytest.fixture
def server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as own:
        yield own


@pytest.fixture
def raw(server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(server.url)
    client.config_set("maxmemory-policy", "noeviction")
    yield client
    client.close()


@pytest.fixture
async def full_registry(server: EmbeddedRedis, tmp_path: Path) -> AsyncIterator[Registry]:
    reg = Registry(server.url, config_dir=tmp_path, environ={})
    yield reg
    await reg.aclose()
    reg.close()


@pytest.fixture
def note(full_registry: Registry) -> JobHandler[[int, str], None]:
    @full_registry.job(retry=Retry(max_attempts=1))
    def note(n: int, text: str) -> None:
        if text == "fail":
            raise RuntimeError("as asked")

    return note


def fill_up(raw: redis.Redis, headroom: int = 0) -> None:
    """Let Redis hold ``headroom`` more bytes than now (0: refuse writes at once)."""
    used = int(raw.info("memory")["used_memory"])
    raw.config_set("maxmemory", used + headroom if headroom else used // 2)


def assert_is_redis_full(error: BaseException) -> None:
    assert isinstance(error, RedisFull)
    assert isinstance(error, RedisUnavailable)  # what callers catch for an unusable Redis
    assert isinstance(error, redis.exceptions.ResponseError)  # what it was before
    assert "is full" in str(error)
    assert "maxmemory" in str(error)


@pytest.mark.parametrize("door", ["enqueue", "enqueue_sync"])
async def test_an_enqueue_into_a_full_redis_raises_redis_full_and_writes_nothing(
    full_registry: Registry,
    note: JobHandler[[int, str], None],
    raw: redis.Redis,
    door: str,
) -> None:
    await note.enqueue(0, "ok")  # the queue exists: only the job itself is refused
    fill_up(raw)
    enqueue: Awaitable[Any] = (
        note.enqueue(1, "ok")
        if door == "enqueue"
        else asyncio.to_thread(note.enqueue_sync, 1, "ok")
    )
    with pytest.raises(RedisFull) as info:
        await enqueue
    assert_is_redis_full(info.value)
    assert "the job was not written" in str(info.value)
    assert info.value.handles == [None]
    assert (await full_registry.count_jobs("default"))[JobState.QUEUED] == 1


@pytest.mark.parametrize("client", ["multiplexed", "redis-py"])
@pytest.mark.parametrize("door", ["enqueue_many", "enqueue_many_sync"])
async def test_enqueue_many_into_a_filling_redis_says_which_jobs_were_written(
    full_registry: Registry,
    note: JobHandler[[int, str], None],
    server: EmbeddedRedis,
    raw: redis.Redis,
    door: str,
    client: str,
) -> None:
    if client == "redis-py":  # a client of one's own: the pipelined path
        full_registry.redis_factory = lambda: redis.asyncio.Redis.from_url(server.url)
    await note.enqueue(-1, "ok")
    fill_up(raw, headroom=2 * 1024 * 1024)
    calls = [(n, TEXT) for n in range(CALLS)]
    enqueue: Awaitable[Any] = (
        note.enqueue_many(calls)
        if door == "enqueue_many"
        else asyncio.to_thread(note.enqueue_many_sync, calls)
    )
    with pytest.raises(RedisFull) as info:
        await enqueue
    error = info.value
    assert_is_redis_full(error)
    handles = error.handles
    assert len(handles) == CALLS
    written = [h for h in handles if h is not None]
    assert 0 < len(written) < CALLS
    assert len(written) % ENQUEUE_CHUNK == 0  # each script call is written whole or not
    assert f"{len(written):,} of the {CALLS:,} jobs were written" in str(error)
    counts = await full_registry.count_jobs("default")
    assert counts[JobState.QUEUED] == 1 + len(written)  # just those: no more, no fewer
    assert (await written[-1].info()).arguments == {"n": handles.index(written[-1]), "text": TEXT}

    raw.config_set("maxmemory", 0)  # memory freed: enqueue again only what was not written
    again = await note.enqueue_many([c for c, h in zip(calls, handles, strict=True) if h is None])
    assert all(h.created for h in again)
    assert (await full_registry.count_jobs("default"))[JobState.QUEUED] == 1 + CALLS


async def test_job_actions_that_redis_refuses_when_full_raise_redis_full(
    full_registry: Registry, note: JobHandler[[int, str], None], raw: redis.Redis
) -> None:
    waiting = await note.options(delay=3600).enqueue(2, "ok")
    fill_up(raw)
    actions: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("update", lambda: waiting.update(priority=9)),
        ("update", lambda: waiting.update(arguments=[3, "other"])),
    ]
    for what, action in actions:
        with pytest.raises(RedisFull) as info:
            await action()
        assert_is_redis_full(info.value)
        assert str(info.value).startswith(f"{what} of job ")
    job = await waiting.info()
    assert job.state is JobState.SCHEDULED
    assert job.priority == 0
    assert job.arguments == {"n": 2, "text": "ok"}
    with pytest.raises(RedisFull) as info:
        await full_registry.add_schedule("hourly", note, every=3600, args=[3, "ok"])
    assert_is_redis_full(info.value)
    assert await full_registry.schedules() == []


async def test_actions_that_free_memory_first_still_run_on_a_full_redis(
    full_registry: Registry, note: JobHandler[[int, str], None], raw: redis.Redis
) -> None:
    failed = await note.enqueue(1, "fail")
    await run_jobs(full_registry)
    waiting = await note.options(delay=3600).enqueue(2, "ok")
    fill_up(raw)
    # a script that begins by removing may go on writing: Redis checks memory at a
    # script's first write only, so these are atomic and succeed
    assert await failed.retry() is JobState.QUEUED
    assert await waiting.reschedule(delay=10) is JobState.SCHEDULED
    assert await waiting.cancel() is CancelOutcome.CANCELLED
    with pytest.raises(RedisFull):
        await note.enqueue(3, "ok")
