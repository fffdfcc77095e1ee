"""Inspecting jobs: listing by queue and state, counting, lookups by id and the events stream."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis

from jobmaster import (
    AttemptOutcome,
    JobHandle,
    JobHandler,
    JobNotFound,
    JobState,
    Registry,
    Retry,
)
from jobmaster.testing import run_jobs
from tests.conftest import wait_until

pytestmark = pytest.mark.deployments


MAIN_STATES = (
    JobState.SCHEDULED,
    JobState.QUEUED,
    JobState.ACTIVE,
    JobState.SUCCEEDED,
    JobState.FAILED,
    JobState.CANCELLED,
)


@pytest.fixture
def add(registry: Registry) -> JobHandler[[int, int], int]:
    @registry.job()
    async def add(a: int, b: int) -> int:
        return a + b

    return add


@pytest.fixture
async def other_process(redis_url: str, tmp_path: Path) -> AsyncIterator[Registry]:
    """Another Registry on the same Redis that defines no jobs, as another process would."""
    registry = Registry(redis_url, config_dir=tmp_path, environ={})
    yield registry
    await registry.aclose()


async def next_millisecond(raw: redis.Redis) -> None:
    """Wait until the Redis clock has moved to a later millisecond (scores are server ms)."""

    def now_ms() -> int:
        seconds, micros = raw.time()
        return int(seconds) * 1000 + int(micros) // 1000

    start = now_ms()
    await wait_until(lambda: now_ms() > start, timeout=2, interval=0.001)


async def enqueue_one_per_ms(
    handler: JobHandler[Any, Any], raw: redis.Redis, count: int
) -> list[JobHandle[Any]]:
    handles = []
    for i in range(count):
        await next_millisecond(raw)
        handles.append(await handler.enqueue(i, i))
    return handles


def ids(jobs: list[Any]) -> list[str]:
    return [job.id for job in jobs]


# -- listing ----------------------------------------------------------------------------------


async def test_list_jobs_newest_first(
    registry: Registry, add: JobHandler[Any, Any], raw_redis: redis.Redis
) -> None:
    handles = await enqueue_one_per_ms(add, raw_redis, 5)
    listed = await registry.list_jobs("default", JobState.QUEUED)
    assert ids(listed) == [h.id for h in reversed(handles)]
    newest = listed[0]
    assert (newest.name, newest.queue, newest.state) == ("add", "default", JobState.QUEUED)
    assert (newest.priority, newest.attempts, newest.error) == (0, 0, None)
    assert [j.created_at for j in listed] == sorted((j.created_at for j in listed), reverse=True)


async def test_list_jobs_of_one_batch_newest_first(
    registry: Registry, add: JobHandler[Any, Any]
) -> None:
    # one enqueue_many call: the later calls of the batch are the newer jobs
    handles = await add.enqueue_many([(i, i) for i in range(20)])
    listed = await registry.list_jobs("default", JobState.QUEUED)
    assert ids(listed) == [h.id for h in reversed(handles)]


async def test_list_jobs_pages_with_offset_and_limit(
    registry: Registry, add: JobHandler[Any, Any], raw_redis: redis.Redis
) -> None:
    handles = await enqueue_one_per_ms(add, raw_redis, 5)
    newest_first = [h.id for h in reversed(handles)]
    pages = [
        ids(await registry.list_jobs("default", JobState.QUEUED, offset=offset, limit=2))
        for offset in (0, 2, 4, 6)
    ]
    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:5], []]
    one = await registry.list_jobs("default", JobState.QUEUED, offset=1, limit=1)
    assert ids(one) == [newest_first[1]]
    assert len(await registry.list_jobs("default", JobState.QUEUED, limit=3)) == 3


async def test_list_jobs_default_limit_is_50(registry: Registry, add: JobHandler[Any, Any]) -> None:
    await add.enqueue_many([(i, i) for i in range(60)])
    assert len(await registry.list_jobs("default", JobState.QUEUED)) == 50
    assert len(await registry.list_jobs("default", JobState.QUEUED, offset=50)) == 10


@pytest.mark.parametrize(("offset", "limit"), [(0, 0), (-1, 10), (0, -5)])
async def test_list_jobs_rejects_bad_paging(
    registry: Registry, add: JobHandler[Any, Any], offset: int, limit: int
) -> None:
    await add.enqueue(1, 2)
    with pytest.raises(ValueError, match="limit must be >= 1 and offset >= 0"):
        await registry.list_jobs("default", JobState.QUEUED, offset=offset, limit=limit)


async def test_list_jobs_by_queue(registry: Registry, add: JobHandler[Any, Any]) -> None:
    default = await add.enqueue(1, 1)
    urgent = await add.options(queue="urgent").enqueue(2, 2)
    assert ids(await registry.list_jobs("default", JobState.QUEUED)) == [default.id]
    assert ids(await registry.list_jobs("urgent", JobState.QUEUED)) == [urgent.id]
    assert await registry.list_jobs("never-used", JobState.QUEUED) == []
    assert await registry.known_queues() == ["default", "urgent"]


async def test_list_scheduled_jobs_soonest_first(
    registry: Registry, add: JobHandler[Any, Any]
) -> None:
    late = await add.options(delay=300).enqueue(1, 1)
    soon = await add.options(delay=100).enqueue(2, 2)
    middle = await add.options(delay=200).enqueue(3, 3)
    now = await add.enqueue(4, 4)
    scheduled = await registry.list_jobs("default", JobState.SCHEDULED)
    assert ids(scheduled) == [soon.id, middle.id, late.id]
    assert all(j.state == JobState.SCHEDULED for j in scheduled)
    assert ids(await registry.list_jobs("default", JobState.QUEUED)) == [now.id]
    page = await registry.list_jobs("default", JobState.SCHEDULED, offset=1, limit=1)
    assert ids(page) == [middle.id]


async def test_list_and_count_by_state_after_running(
    registry: Registry, add: JobHandler[Any, Any], boom: JobHandler[Any, Any]
) -> None:
    ok = await add.enqueue_many([(1, 1), (2, 2), (3, 3)])
    bad = [await boom.enqueue("first"), await boom.enqueue("second")]
    later = await add.options(delay=3600).enqueue(4, 4)
    urgent = await add.options(queue="urgent").enqueue(5, 5)

    assert await run_jobs(registry, queues=["default"], include_scheduled=False) == 5

    succeeded = await registry.list_jobs("default", JobState.SUCCEEDED)
    assert sorted(ids(succeeded)) == sorted(h.id for h in ok)
    assert all(j.attempts == 1 and j.error is None for j in succeeded)
    failed = await registry.list_jobs("default", JobState.FAILED)
    assert sorted(ids(failed)) == sorted(h.id for h in bad)
    for summary in failed:
        assert summary.name == "boom"
        assert summary.attempts == 1
        assert summary.error is not None
        assert summary.error.type == "RuntimeError"
        assert summary.error.message in ("first", "second")
    assert ids(await registry.list_jobs("default", JobState.SCHEDULED)) == [later.id]
    assert await registry.list_jobs("default", JobState.QUEUED) == []
    assert await registry.list_jobs("default", JobState.ACTIVE) == []

    counts = await registry.count_jobs("default")
    assert {s: counts.get(s, 0) for s in MAIN_STATES} == {
        JobState.SCHEDULED: 1,
        JobState.QUEUED: 0,
        JobState.ACTIVE: 0,
        JobState.SUCCEEDED: 3,
        JobState.FAILED: 2,
        JobState.CANCELLED: 0,
    }
    urgent_counts = await registry.count_jobs("urgent")
    assert urgent_counts[JobState.QUEUED] == 1  # not run: its queue was not given
    assert (await urgent.info()).state == JobState.QUEUED


async def test_count_jobs_per_state(registry: Registry, add: JobHandler[Any, Any]) -> None:
    empty = await registry.count_jobs("default")
    assert all(empty[s] == 0 for s in MAIN_STATES)
    await add.enqueue_many([(i, i) for i in range(3)])
    await add.options(delay=60).enqueue_many([(i, i) for i in range(2)])
    await add.options(queue="other").enqueue(1, 1)
    counts = await registry.count_jobs("default")
    assert {s: counts[s] for s in MAIN_STATES} == {
        JobState.SCHEDULED: 2,
        JobState.QUEUED: 3,
        JobState.ACTIVE: 0,
        JobState.SUCCEEDED: 0,
        JobState.FAILED: 0,
        JobState.CANCELLED: 0,
    }
    assert (await registry.count_jobs("other"))[JobState.QUEUED] == 1


# -- lookups by id --------------------------------------------------------------------------------


async def test_get_job_from_another_registry(
    registry: Registry, other_process: Registry, add: JobHandler[Any, Any]
) -> None:
    handle = await add.options(queue="math").enqueue(2, 3)
    seen = await other_process.get_job(handle.id)
    assert (seen.id, seen.name, seen.queue, seen.state) == (
        handle.id,
        "add",
        "math",
        JobState.QUEUED,
    )
    assert seen.arguments == {"a": 2, "b": 3}
    assert seen.attempts == []
    assert other_process.jobs == {}  # it knows nothing of the job's code

    await run_jobs(registry, queues=["math"])
    done = await other_process.get_job(handle.id)
    assert done.state == JobState.SUCCEEDED
    assert done.result == 5
    assert done.finished_at is not None
    assert len(done.attempts) == 1
    attempt = done.attempts[0]
    assert attempt.number == 1
    assert attempt.outcome == AttemptOutcome.SUCCEEDED
    assert attempt.worker_id
    assert attempt.finished_at is not None
    assert attempt.finished_at >= attempt.started_at
    # the same job, read through either registry
    assert done == await registry.get_job(handle.id)
    found = await other_process.find(handle.id)
    assert (found.id, found.queue) == (handle.id, "math")


async def test_get_job_of_a_failed_job_from_another_registry(
    registry: Registry, other_process: Registry, boom: JobHandler[Any, Any]
) -> None:
    handle = await boom.enqueue("disk full")
    await run_jobs(registry)
    job = await other_process.get_job(handle.id)
    assert job.state == JobState.FAILED
    assert job.error is not None
    assert (job.error.type, job.error.message) == ("RuntimeError", "disk full")
    assert job.attempts[0].outcome == AttemptOutcome.FAILED
    assert job.attempts[0].error is not None
    assert "disk full" in (job.attempts[0].error.traceback or "")


async def test_get_job_of_an_unknown_id_raises_job_not_found(
    registry: Registry, other_process: Registry, add: JobHandler[Any, Any]
) -> None:
    with pytest.raises(JobNotFound, match="'no-such-job'"):
        await registry.get_job("no-such-job")  # no queue at all yet
    await add.enqueue(1, 2)
    with pytest.raises(JobNotFound, match="'no-such-job'"):
        await other_process.get_job("no-such-job")
    with pytest.raises(JobNotFound):
        await registry.find("no-such-job")


async def test_handle_to_a_job_in_the_wrong_queue_raises_job_not_found(
    registry: Registry, add: JobHandler[Any, Any]
) -> None:
    handle = await add.enqueue(1, 2)
    wrong = registry.handle(handle.id, "elsewhere")
    with pytest.raises(JobNotFound):
        await wrong.info()
    with pytest.raises(JobNotFound):
        await wrong.state()
    right = registry.handle(handle.id, "default")
    assert (await right.info()).arguments == {"a": 1, "b": 2}


# -- the events stream ------------------------------------------------------------------------


async def read_all_events(registry: Registry, queue: str = "default") -> list[tuple[str, str]]:
    events = await registry.connection().store.inspection.read_events({queue: b"0-0"}, None)
    assert all(e.queue == queue for e in events)
    return [(e.job_id, e.state.value) for e in events]


def of(job_id: str, events: list[tuple[str, str]]) -> list[str]:
    return [state for jid, state in events if jid == job_id]


async def test_events_record_enqueue_and_run(registry: Registry, add: JobHandler[Any, Any]) -> None:
    handle = await add.enqueue(1, 2)
    assert await read_all_events(registry) == [(handle.id, "queued")]
    await run_jobs(registry)
    assert of(handle.id, await read_all_events(registry)) == ["queued", "active", "succeeded"]


async def test_events_record_a_failure(registry: Registry, boom: JobHandler[Any, Any]) -> None:
    handle = await boom.enqueue("no")
    await run_jobs(registry)
    assert of(handle.id, await read_all_events(registry)) == ["queued", "active", "failed"]


async def test_events_record_a_retry(registry: Registry) -> None:
    calls: list[int] = []

    @registry.job(retry=Retry(max_attempts=2, backoff=0.01, jitter=False))
    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("first time")
        return "ok"

    handle = await flaky.enqueue()
    await run_jobs(registry)
    assert of(handle.id, await read_all_events(registry)) == [
        "queued",
        "active",
        "scheduled",
        "queued",
        "active",
        "succeeded",
    ]
    job = await handle.info()
    assert [a.outcome for a in job.attempts] == [AttemptOutcome.FAILED, AttemptOutcome.SUCCEEDED]


async def test_events_record_delayed_jobs_being_promoted(
    registry: Registry, add: JobHandler[Any, Any]
) -> None:
    handle = await add.options(delay=0.05).enqueue(1, 2)
    assert await read_all_events(registry) == [(handle.id, "scheduled")]
    await run_jobs(registry)
    assert of(handle.id, await read_all_events(registry)) == [
        "scheduled",
        "queued",
        "active",
        "succeeded",
    ]


async def test_events_of_a_batch_and_of_a_duplicate(
    registry: Registry, add: JobHandler[Any, Any]
) -> None:
    handles = await add.enqueue_many([(i, i) for i in range(1500)])
    events = await read_all_events(registry)
    assert events == [(h.id, "queued") for h in handles]
    await add.options(job_id="only-once").enqueue(1, 1)
    await add.options(job_id="only-once").enqueue(1, 1)  # exists: no event
    assert of("only-once", await read_all_events(registry)) == ["queued"]


async def test_events_are_per_queue(registry: Registry, add: JobHandler[Any, Any]) -> None:
    default = await add.enqueue(1, 1)
    urgent = await add.options(queue="urgent").enqueue(2, 2)
    assert await read_all_events(registry, "default") == [(default.id, "queued")]
    assert await read_all_events(registry, "urgent") == [(urgent.id, "queued")]


async def test_read_events_from_a_position_returns_only_later_events(
    registry: Registry, add: JobHandler[Any, Any]
) -> None:
    first = await add.enqueue(1, 1)
    store = registry.connection().store
    positions = {"default": b"0-0"}
    assert [e.job_id for e in await store.inspection.read_events(positions, None)] == [first.id]
    assert positions["default"] != b"0-0"  # moved past what was read
    assert await store.inspection.read_events(positions, None) == []
    second = await add.enqueue(2, 2)
    assert [(e.job_id, e.state) for e in await store.inspection.read_events(positions, None)] == [
        (second.id, JobState.QUEUED)
    ]
