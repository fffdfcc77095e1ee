"""The claim and finish scripts edit the statuses they wrote themselves as text, and any
other through cjson: both ways must leave the same jobs behind."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from jobmaster import AttemptOutcome, JobState
from jobmaster.codec import pack
from jobmaster.records import job_record
from jobmaster.store import Completion, NewJob, Store

RECORD = pack(job_record("noop", pack({}), 0, 0))
PLAIN = "host-1-abc"
ESCAPED = 'host/"1"\\-abc'  # characters JSON escapes: the statuses go through cjson


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[Store]:
    s = Store(Redis.from_url(redis_url))
    yield s
    await s.close()


async def _run(store: Store, queue: str, worker: str) -> dict[str, Any]:
    """Enqueue four jobs, claim them as ``worker``, end them four ways, claim the retried
    one again and end it; what a user then sees of each job."""
    ids = ["ok", "failed", "retried", "cancelled"]
    await store.jobs.enqueue(queue, [NewJob(i, RECORD, 3) for i in ids])
    claim = await store.jobs.claim(queue, worker, 10, 60_000, worker + "-host", 7)
    assert sorted((j.id, j.attempt) for j in claim.jobs) == sorted((i, 1) for i in ids)
    token = f"{worker}/1"
    ends = [
        Completion("ok", token, "succeeded", "succeeded", result=pack(42)),
        Completion("failed", token, "failed", "failed", error_type="E", error_message='a "b"'),
        Completion("retried", token, "failed", "scheduled", delay_ms=0, error_type="E"),
        Completion("cancelled", token, "cancelled", "cancelled"),
        Completion("ok", "someone-else/1", "succeeded", "succeeded"),  # not its lease
    ]
    assert await store.jobs.finish(queue, ends, 86_400_000) == [True, True, True, True, False]
    await store.jobs.promote(queue)
    again = await store.jobs.claim(queue, worker, 10, 60_000, worker + "-host", 7)
    assert [(j.id, j.attempt) for j in again.jobs] == [("retried", 2)]
    done = Completion("retried", f"{worker}/2", "succeeded", "succeeded", result=pack(None))
    assert await store.jobs.finish(queue, [done], 86_400_000) == [True]
    seen: dict[str, Any] = {}
    for job_id in ids:
        job = await store.inspection.job(queue, job_id)
        assert job is not None
        seen[job_id] = {
            "state": job.state,
            "priority": job.priority,
            "error": job.error and (job.error.type, job.error.message),
            "attempts": [
                (a.number, a.worker_id, a.hostname, a.pid, a.outcome, a.finished_at is not None)
                for a in job.attempts
            ],
        }
        seen[job_id]["status"] = sorted(
            json.loads(await store.redis.hget(store.keys.queue(queue).status, job_id))
        )
    return seen


async def test_statuses_edited_as_text_and_through_cjson_agree(store: Store) -> None:
    plain = await _run(store, "plain", PLAIN)
    escaped = await _run(store, "escaped", ESCAPED)
    assert plain["ok"]["state"] is JobState.SUCCEEDED
    assert plain["failed"]["error"] == ("E", 'a "b"')
    assert plain["retried"]["attempts"] == [
        (1, PLAIN, PLAIN + "-host", 7, AttemptOutcome.FAILED, True),
        (2, PLAIN, PLAIN + "-host", 7, AttemptOutcome.SUCCEEDED, True),
    ]
    assert plain["cancelled"]["state"] is JobState.CANCELLED
    assert plain["ok"]["status"] == ["a", "b", "f", "s"]  # no lease token or entry left

    def renamed(seen: dict[str, Any]) -> str:
        return repr(seen).replace(repr(ESCAPED)[1:-1], PLAIN)

    assert renamed(escaped) == repr(plain)


async def test_an_enqueue_of_mixed_bands_and_delays_sends_them_in_runs(store: Store) -> None:
    """Runs of one band and delay share their values in the call: a batch that changes band
    or delay from job to job, and back, still puts each job where it belongs."""
    plan = [(0, 0), (0, 0), (5, 0), (0, 60_000), (0, 60_000), (5, 0), (0, 0), (9, 0)]
    jobs = [NewJob(f"j{n}", RECORD, band, delay_ms=delay) for n, (band, delay) in enumerate(plan)]
    jobs.append(NewJob("j0", RECORD, 9))  # an id that exists: left untouched
    assert await store.jobs.enqueue("mixed", jobs) == [True] * len(plan) + [False]
    states = [await store.inspection.state("mixed", f"j{n}") for n in range(len(plan))]
    assert states == [JobState.SCHEDULED if delay else JobState.QUEUED for _, delay in plan]
    claim = await store.jobs.claim("mixed", PLAIN, 100, 60_000, "host", 1)
    # highest band first, in enqueue order within a band; the delayed ones wait
    assert [j.id for j in claim.jobs] == ["j7", "j2", "j5", "j0", "j1", "j6"]
