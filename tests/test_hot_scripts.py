"""The scripts read and write the records they edit (statuses, attempts, schedule states) in
one encoding, whatever the fields hold, and read the JSON records of earlier versions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from jobmaster import AttemptOutcome, JobState
from jobmaster.codec import pack
from jobmaster.record_codec import ATTEMPT, ATTEMPT_END, SCHEDULE_STATE, STATUS
from jobmaster.records import job_record
from jobmaster.scripts import source
from jobmaster.store import Completion, Lease, NewJob, ScheduleFiring, Store, TickJob
from jobmaster.store.connection import QueueKeyLists
from jobmaster.store.enqueueing import enqueue_call

RECORD = pack(job_record("noop", pack({}), 0, 0))
PLAIN = "host-1-abc"
ODD = 'host|"1"\\-\xe9{}\n\xc0'  # separators, JSON's specials, a newline, non-ASCII


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
            STATUS.decode(await store.redis.hget(store.keys.queue(queue).status, job_id))
        )
    return seen


async def test_jobs_end_alike_whatever_their_workers_are_called(store: Store) -> None:
    plain = await _run(store, "plain", PLAIN)
    odd = await _run(store, "odd", ODD)
    assert plain["ok"]["state"] is JobState.SUCCEEDED
    assert plain["failed"]["error"] == ("E", 'a "b"')
    assert plain["retried"]["attempts"] == [
        (1, PLAIN, PLAIN + "-host", 7, AttemptOutcome.FAILED, True),
        (2, PLAIN, PLAIN + "-host", 7, AttemptOutcome.SUCCEEDED, True),
    ]
    assert plain["cancelled"]["state"] is JobState.CANCELLED
    assert plain["ok"]["status"] == ["a", "b", "f", "s"]  # no lease token or entry left

    def renamed(seen: dict[str, Any]) -> str:
        return repr(seen).replace(repr(ODD)[1:-1], PLAIN)

    assert renamed(odd) == repr(plain)


async def test_every_record_the_scripts_write_is_in_the_one_encoding(store: Store) -> None:
    q = store.keys.queue("q")
    await _run(store, "q", PLAIN)  # enqueue, claim, finish four ways, promote
    await store.jobs.enqueue("q", [NewJob("later", RECORD, 2, delay_ms=60_000)])
    await store.jobs.enqueue("q", [NewJob(f"j{n}", RECORD, 1) for n in range(3)])
    await store.control.reschedule("q", "j0", 60_000)
    await store.control.cancel("q", "j1", "no")
    claim = await store.jobs.claim("q", PLAIN, 10, 60_000, "host", 7)
    assert [j.id for j in claim.jobs] == ["j2"]
    await store.leases.record_overrun("q", Lease("j2", f"{PLAIN}/1"), "TimeoutError", "late")
    await store.leases.requeue("q", [Lease("j2", f"{PLAIN}/1")], "stopping")
    await store.control.retry("q", "failed")
    saved = await store.schedules.save_schedule("q", "tick", create=True, due_ms=1)
    firing = ScheduleFiring("tick", saved.revision, 1, 2, 0, [TickJob("tick@1", RECORD, 1)])
    await store.schedules.fire_schedules("q", [firing])
    attempts = await store.redis.hgetall(q.attempts)
    written = {
        "status": (STATUS, await store.redis.hgetall(q.status)),
        "attempts": (ATTEMPT, {f: r for f, r in attempts.items() if not f.endswith(b":end")}),
        "ends": (ATTEMPT_END, {f: r for f, r in attempts.items() if f.endswith(b":end")}),
        "schedule_state": (SCHEDULE_STATE, await store.redis.hgetall(q.schedule_state)),
    }
    assert len(written["status"][1]) == 9
    assert len(written["attempts"][1]) == 6
    assert len(written["ends"][1]) == 6  # every attempt ended
    for fmt, records in written.values():
        for raw in records.values():
            assert raw[:1] != b"{", raw  # no JSON is written any more
            fmt.decode(raw)


async def test_records_an_earlier_version_wrote_are_read(store: Store) -> None:
    """JSON statuses, attempts and schedule states, as the scripts wrote them before: a
    rolling upgrade or existing data. Claimed, ended and fired alike, and then written in the
    one encoding."""
    q = store.keys.queue("q")
    await store.jobs.enqueue("q", [NewJob(i, RECORD, 3) for i in ("active", "queued")])
    claim = await store.jobs.claim("q", PLAIN, 1, 60_000, "host", 7)
    assert [j.id for j in claim.jobs] == ["active"]
    entry = STATUS.decode(await store.redis.hget(q.status, "queued"))["e"]
    started = ATTEMPT.decode(await store.redis.hget(q.attempts, "active:1"))["s"]
    legacy = {
        q.status: {
            "queued": {"a": 0, "b": 3, "s": "queued", "e": entry, "l": 1, "u": 1, "k": 1},
            "active": {"a": 1, "b": 3, "s": "active", "t": f"{PLAIN}/1"},
        },
        q.attempts: {"active:1": {"n": 1, "w": PLAIN, "h": "host", "p": 7, "s": started}},
    }
    for key, records in legacy.items():
        for field, record in records.items():
            await store.redis.hset(key, field, json.dumps(record))
    ok = Completion("active", f"{PLAIN}/1", "succeeded", "succeeded", result=pack(1))
    assert await store.jobs.finish("q", [ok], 86_400_000) == [True]
    claim = await store.jobs.claim("q", PLAIN, 1, 60_000, "host", 7)
    assert [(j.id, j.attempt, j.lost, j.suspect) for j in claim.jobs] == [("queued", 1, 1, True)]
    active = await store.inspection.job("q", "active")
    assert active is not None
    assert active.state is JobState.SUCCEEDED
    [attempt] = active.attempts
    assert (attempt.worker_id, attempt.hostname, attempt.pid) == (PLAIN, "host", 7)
    assert attempt.outcome is AttemptOutcome.SUCCEEDED
    for field in ("queued", "active"):
        assert (await store.redis.hget(q.status, field))[:1] != b"{"  # written anew

    saved = await store.schedules.save_schedule("q", "tick", create=True, due_ms=5)
    state = {"r": saved.revision, "d": 5, "l": 1, "j": "tick@1"}
    await store.redis.hset(q.schedule_state, "tick", json.dumps(state))
    firing = ScheduleFiring("tick", saved.revision, 5, 9, 0, [TickJob("tick@5", RECORD, 5)])
    fired, _ = await store.schedules.fire_schedules("q", [firing])
    assert [f.created for f in fired] == [1]
    raw = await store.redis.hget(q.schedule_state, "tick")
    assert SCHEDULE_STATE.decode(raw) == {"r": saved.revision, "d": 9, "l": 5, "j": "tick@5"}


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


async def test_the_queued_index_keeps_a_band_in_its_stream_order(store: Store) -> None:
    """One call of 2,500 jobs in a band (the thousandths of its scores reach 999 twice),
    and a call after it: the queued index scores them in their stream's order (never
    lower than an earlier entry's: entries past the thousandth of one millisecond share
    its last score), each by a millisecond no later than its entry's."""
    q = store.keys.queue("order")
    lists = QueueKeyLists(q)
    for count, first in ((2_500, 0), (10, 2_500)):
        keys, argv = enqueue_call(
            lists, [NewJob(f"j{first + n}", RECORD, 4) for n in range(count)], 100
        )
        assert await store.redis.eval(source("enqueue"), len(keys), *keys, *argv) == [1] * count
    entries = await store.redis.xrange(q.streams[4])
    scores = [await store.redis.zscore(q.index("queued"), fields[b"id"]) for _, fields in entries]
    assert len(entries) == 2_510
    assert await store.redis.zcard(q.index("queued")) == len(entries)
    assert scores == sorted(scores)  # in the stream's order
    for (entry, _), score in zip(entries, scores, strict=True):
        assert int(score) <= int(entry.split(b"-")[0])


async def test_successes_in_a_row_with_other_ttls_and_ends_between_are_each_recorded(
    store: Store,
) -> None:
    ids = [f"s{n}" for n in range(6)]
    await store.jobs.enqueue("runs", [NewJob(i, RECORD, 0) for i in ids])
    claim = await store.jobs.claim("runs", PLAIN, 10, 60_000, "host", 7)
    assert len(claim.jobs) == len(ids)
    token = f"{PLAIN}/1"
    ends = [
        Completion("s0", token, "succeeded", "succeeded", result=pack(0)),
        Completion("s1", token, "succeeded", "succeeded", result=pack(1), result_ttl_ms=60_000),
        Completion("s2", token, "succeeded", "succeeded", result=pack(2), result_ttl_ms=60_000),
        Completion("s3", token, "failed", "failed", error_type="E", error_message="m"),
        Completion("s4", token, "succeeded", "succeeded", result=pack(4)),
        Completion("s5", "someone-else/1", "succeeded", "succeeded", result=pack(5)),
    ]
    assert await store.jobs.finish("runs", ends, 86_400_000) == [1, 1, 1, 1, 1, 0]
    q = store.keys.queue("runs")
    results = await store.redis.hmget(q.results, ids)
    assert results == [pack(0), pack(1), pack(2), None, pack(4), None]
    expiring = await store.redis.zrange(q.result_expiry, 0, -1)
    assert sorted(expiring) == [b"s1", b"s2"]
    states = [await store.inspection.state("runs", i) for i in ids]
    assert states == [JobState.SUCCEEDED] * 3 + [
        JobState.FAILED,
        JobState.SUCCEEDED,
        JobState.ACTIVE,
    ]
