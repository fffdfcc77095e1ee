"""Redis full (maxmemory with noeviction, the normal setting for a queue): the jobs that run
keep their leases, their ends are recorded, log lines are dropped (and said so), and nothing
is counted lost that was not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from jobmaster import AttemptOutcome, JobState, Registry
from tests.conftest import PROCAPP, finish, start_worker, stop_process, wait_until

JOBS = 12


@pytest.fixture
def full_redis(raw_redis: redis.Redis) -> Iterator[redis.Redis]:
    """Makes the test's Redis refuse writes that may grow memory when asked to; restores it."""
    policy = raw_redis.config_get("maxmemory-policy")["maxmemory-policy"]
    raw_redis.config_set("maxmemory-policy", "noeviction")
    try:
        yield raw_redis
    finally:
        raw_redis.config_set("maxmemory", 0)
        raw_redis.config_set("maxmemory-policy", policy)


async def test_jobs_running_while_redis_is_full_succeed_once(
    procapp: Registry, redis_url: str, full_redis: redis.Redis
) -> None:
    handles = await procapp.get("chatty").enqueue_many([(2.5,)] * JOBS)
    # warnings only: the jobs' own lines would fill the unread pipe of the worker's output
    worker = start_worker(
        PROCAPP, redis_url, "--concurrency", str(JOBS), "--lease", "1", "--heartbeat", "0.3",
        log_level="warning",
    )  # fmt: skip
    try:
        await wait_until(lambda: _count(procapp, JobState.ACTIVE, JOBS), timeout=15)
        full_redis.config_set("maxmemory", 1)  # every write that may grow memory is refused
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            full_redis.set("probe", "x")
        # 2.5 s of work with a 1 s lease, all of it while Redis is full
        await wait_until(lambda: _count(procapp, JobState.SUCCEEDED, JOBS), timeout=20)
        assert full_redis.config_get("maxmemory")["maxmemory"] == "1"  # still full
        full_redis.config_set("maxmemory", 0)
        for handle in handles:
            job = await handle.info()
            assert [a.outcome for a in job.attempts] == [AttemptOutcome.SUCCEEDED]
        # once Redis has room, each attempt says how many of its lines were dropped
        for handle in handles:
            note = await wait_until(lambda h=handle: _drop_note(h), timeout=10)
            assert note["dropped"] > 0
    finally:
        stop_process(worker)
    code, out = finish(worker)
    assert code == 0, out
    assert "Redis is full (maxmemory): dropping log lines" in out


async def _count(registry: Registry, state: JobState, expected: int) -> bool:
    return (await registry.count_jobs("default"))[state] == expected


async def _drop_note(handle: object) -> dict[str, int] | None:
    job = await handle.info()  # type: ignore[attr-defined]
    for line in job.attempts[0].logs:
        if "dropped" in line.event:
            return dict(line.fields)
    return None
