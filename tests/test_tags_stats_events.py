"""Tags, listing by name and tag, deleting finished jobs, queue statistics and the events feed."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobmaster import (
    InvalidArguments,
    InvalidState,
    JobEvent,
    JobHandler,
    JobNotFound,
    JobState,
    Registry,
)
from jobmaster.testing import run_jobs
from tests.conftest import wait_until

pytestmark = pytest.mark.deployments


@pytest.fixture
def add(registry: Registry) -> JobHandler[[int, int], int]:
    @registry.job(tags=["math"])
    async def add(a: int, b: int) -> int:
        return a + b

    return add


# -- tags ----------------------------------------------------------------------------------------


async def test_jobs_carry_the_definitions_tags_or_their_own(
    registry: Registry, add: JobHandler[Any, Any]
) -> None:
    plain = await add.enqueue(1, 2)
    tagged = await add.options(tags=["customer:42", "nightly"]).enqueue(3, 4)
    assert (await plain.info()).tags == ["math"]
    assert (await tagged.info()).tags == ["customer:42", "nightly"]
    by_name = await registry.enqueue("add", {"a": 1, "b": 1}, tags=["api"])
    assert (await by_name.info()).tags == ["api"]
    listed = await registry.list_jobs("default", JobState.QUEUED)
    assert {job.id: job.tags for job in listed}[tagged.id] == ["customer:42", "nightly"]


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ("nightly", "must be a list of strings"),
        (["ok", "has space"], "each tag must be"),
        ([""], "each tag must be"),
        ([str(i) for i in range(17)], "at most 16 tags"),
        ([7], "each tag must be"),
    ],
)
async def test_bad_tags_are_refused_before_anything_is_written(
    registry: Registry, add: JobHandler[Any, Any], tags: Any, message: str
) -> None:
    with pytest.raises(InvalidArguments, match=message):
        await add.options(tags=tags).enqueue(1, 2)
    assert (await registry.count_jobs("default"))[JobState.QUEUED] == 0


def test_bad_tags_in_a_definition_are_refused(registry: Registry) -> None:
    with pytest.raises(ValueError, match="tags"):

        @registry.job(tags=["no spaces allowed"])
        def job() -> None: ...


async def test_list_jobs_by_name_and_tag(
    registry: Registry, add: JobHandler[Any, Any], boom: JobHandler[Any, Any]
) -> None:
    nightly = [await add.options(tags=["nightly"]).enqueue(i, i) for i in range(3)]
    math = [await add.enqueue(i, i) for i in range(2)]
    other = await boom.options(tags=["nightly"]).enqueue("x")

    def ids(jobs: list[Any]) -> set[str]:
        return {job.id for job in jobs}

    by_tag = await registry.list_jobs("default", JobState.QUEUED, tag="nightly")
    assert ids(by_tag) == {h.id for h in nightly} | {other.id}
    by_name = await registry.list_jobs("default", JobState.QUEUED, name="add")
    assert ids(by_name) == {h.id for h in nightly + math}
    both = await registry.list_jobs("default", JobState.QUEUED, name="boom", tag="nightly")
    assert ids(both) == {other.id}
    assert await registry.list_jobs("default", JobState.QUEUED, tag="absent") == []
    # offset and limit count the matching jobs, newest first
    newest_first = [job.id for job in by_name]
    page = await registry.list_jobs("default", JobState.QUEUED, name="add", offset=1, limit=2)
    assert [job.id for job in page] == newest_first[1:3]


async def test_list_by_name_scans_past_the_first_chunk(
    registry: Registry, add: JobHandler[Any, Any], boom: JobHandler[Any, Any]
) -> None:
    old = await boom.enqueue("oldest")
    await add.enqueue_many([(i, i) for i in range(1200)])
    found = await registry.list_jobs("default", JobState.QUEUED, name="boom")
    assert [job.id for job in found] == [old.id]
    # a scan limit smaller than the backlog does not reach it
    assert await registry.list_jobs("default", JobState.QUEUED, name="boom", scan_limit=600) == []


# -- delete --------------------------------------------------------------------------------------


async def test_delete_a_finished_job_forgets_everything(
    registry: Registry, boom: JobHandler[Any, Any], add: JobHandler[Any, Any]
) -> None:
    failed = await boom.enqueue("gone")
    kept = await add.enqueue(1, 1)
    await run_jobs(registry)
    assert (await failed.info()).attempts[0].error is not None
    await registry.delete_job(failed.id)
    with pytest.raises(JobNotFound):
        await failed.info()
    counts = await registry.count_jobs("default")
    assert (counts[JobState.FAILED], counts[JobState.SUCCEEDED]) == (0, 1)
    assert await kept.result(timeout=1) == 2
    with pytest.raises(JobNotFound):
        await registry.delete_job(failed.id)


async def test_delete_refuses_jobs_that_have_not_finished(
    registry: Registry, add: JobHandler[Any, Any]
) -> None:
    waiting = await add.enqueue(1, 1)
    with pytest.raises(InvalidState, match="only finished jobs can be deleted"):
        await waiting.delete()
    assert await waiting.state() == JobState.QUEUED
    await waiting.cancel()
    await waiting.delete()
    assert (await registry.count_jobs("default"))[JobState.CANCELLED] == 0


# -- statistics ------------------------------------------------------------------------------------


async def test_queue_stats_counts_finished_jobs_per_bucket(
    registry: Registry, add: JobHandler[Any, Any], boom: JobHandler[Any, Any]
) -> None:
    before = datetime.now(UTC)
    waiting_since = datetime.now(UTC)
    await add.enqueue_many([(i, i) for i in range(5)])
    await boom.enqueue_many([("x",), ("y",)])
    await run_jobs(registry)
    oldest = await add.enqueue(0, 0)
    await add.enqueue(1, 1)
    stats = await registry.queue_stats("default", buckets=10, bucket_seconds=60)
    assert stats.counts[JobState.SUCCEEDED] == 5
    assert stats.counts[JobState.FAILED] == 2
    assert stats.counts[JobState.QUEUED] == 2
    assert (sum(stats.succeeded), sum(stats.failed)) == (5, 2)
    # everything finished just now: the last bucket has it all
    assert (stats.succeeded[-1], stats.failed[-1]) == (5, 2)
    assert len(stats.bucket_starts) == 10
    assert (
        stats.bucket_starts[-1]
        <= datetime.now(UTC)
        <= stats.bucket_starts[-1] + timedelta(seconds=61)
    )
    assert stats.oldest_waiting_at is not None
    assert stats.oldest_waiting_at >= waiting_since - timedelta(seconds=1)
    assert abs(stats.oldest_waiting_at - (await oldest.info()).created_at) < timedelta(seconds=1)
    assert before - timedelta(seconds=1) <= stats.oldest_waiting_at
    empty = await registry.queue_stats("never-used", buckets=3)
    assert (empty.succeeded, empty.failed, empty.oldest_waiting_at) == ([0, 0, 0], [0, 0, 0], None)


async def test_queue_stats_rejects_bad_buckets(registry: Registry) -> None:
    with pytest.raises(ValueError, match="buckets"):
        await registry.queue_stats("default", buckets=0)


# -- events ----------------------------------------------------------------------------------------


async def collect(
    events: AsyncIterator[JobEvent], job_id: str, until: JobState, into: list[JobEvent]
) -> None:
    async for event in events:
        if event.job_id == job_id:
            into.append(event)
            if event.state == until:
                return


async def test_events_follow_a_job_through_its_life(
    registry: Registry, add: JobHandler[Any, Any]
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    handle = await add.options(job_id="job-1").enqueue(1, 2)
    await run_jobs(registry)
    events = registry.events(["default"], since=since)
    seen: list[JobEvent] = []
    reader = asyncio.ensure_future(collect(events, "job-1", JobState.SUCCEEDED, seen))
    async with asyncio.timeout(10):
        await reader
    await events.aclose()
    assert [e.state for e in seen] == [JobState.QUEUED, JobState.ACTIVE, JobState.SUCCEEDED]
    assert all(e.queue == "default" for e in seen)
    assert seen[0].at <= seen[-1].at
    assert await handle.result(timeout=1) == 3


async def test_events_of_every_queue_include_new_queues(
    registry: Registry, add: JobHandler[Any, Any]
) -> None:
    await add.enqueue(1, 1)  # "default" exists before the feed starts; "brand-new" does not
    events = registry.events(since=datetime.now(UTC) - timedelta(seconds=1))
    seen: list[JobEvent] = []

    async def read_all() -> None:
        async for event in events:
            seen.append(event)

    reader = asyncio.ensure_future(read_all())
    # once the feed has delivered this event it is running; then make the new queue
    await add.options(job_id="first").enqueue(1, 1)
    await wait_until(lambda: any(e.job_id == "first" for e in seen))
    await add.options(queue="brand-new", job_id="fresh").enqueue(1, 1)
    await wait_until(lambda: any(e.job_id == "fresh" for e in seen))
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    await events.aclose()
    assert [(e.queue, e.state) for e in seen if e.job_id == "fresh"] == [
        ("brand-new", JobState.QUEUED)
    ]
