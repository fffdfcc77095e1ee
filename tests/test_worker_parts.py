"""The worker's parts alone, against a real Redis and without a Worker: each is given the
store, the table of running attempts and the events it needs, and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import structlog

from jobmaster import AttemptOutcome, CancelOutcome, JobState, Registry
from jobmaster.store import ClaimedJob, Lease, Store
from jobmaster.worker.attempt import Cancelled, RunningJob, run_attempt
from jobmaster.worker.completions import CompletionWriter
from jobmaster.worker.control import ControlListener
from jobmaster.worker.fetcher import Fetcher
from jobmaster.worker.heartbeat import Heartbeat
from jobmaster.worker.held_leases import HeldLeases
from jobmaster.worker.reclaimer import Reclaimer
from jobmaster.worker.running import RunningAttempts
from tests.conftest import wait_until

LOG = structlog.get_logger("tests.worker_parts")
QUEUE = "default"
LEASE_MS = 30_000


@pytest.fixture
async def store(registry: Registry) -> AsyncIterator[Store]:
    """A store of the registry's own, with the default queue's groups in place."""
    store = registry.new_store()
    await store.jobs.ensure_groups(QUEUE)
    yield store
    await store.close()


async def claim_one(store: Store, consumer: str, lease_ms: int = LEASE_MS) -> RunningJob:
    """Claim the next job as ``consumer`` would: the attempt that holds its lease."""
    claim = await store.jobs.claim(QUEUE, consumer, 1, lease_ms, "host", 1)
    (claimed,) = claim.jobs
    return RunningJob(QUEUE, claimed.id, claimed.attempt, f"{consumer}/{claimed.attempt}")


async def test_the_completion_writer_records_ends_and_keeps_their_leases_until_then(
    registry: Registry, store: Store
) -> None:
    @registry.job()
    async def double(n: int) -> int:
        return 2 * n

    handle = await double.enqueue(21)
    claim = await store.jobs.claim(QUEUE, "w1", 1, LEASE_MS, "host", 1)
    (claimed,) = claim.jobs
    job = RunningJob(QUEUE, claimed.id, claimed.attempt, f"w1/{claimed.attempt}")
    completion = await run_attempt(
        registry, job, claimed.record, executor=None, echo=None, retention_s=60
    )
    running = RunningAttempts(LOG)
    closed = asyncio.Event()
    writer = CompletionWriter(store, running, retention_ms=60_000, log=LOG, closed=closed)
    held = HeldLeases(running, writer)

    writer.add(job, completion)
    assert writer.unrecorded == 1
    assert held.leases() == {QUEUE: [Lease(handle.id, job.token)]}  # ended, not yet written
    assert await handle.state() is JobState.ACTIVE

    task = asyncio.create_task(writer.run())
    assert await handle.result(timeout=5) == 42
    await wait_until(lambda: writer.jobs_done == 1, timeout=5)
    assert writer.unrecorded == 0
    assert held.leases() == {}
    closed.set()
    writer.wake()
    await asyncio.wait_for(task, 5)


async def test_the_fetcher_claims_into_free_slots_only(registry: Registry, store: Store) -> None:
    @registry.job()
    async def work(n: int) -> None: ...

    handles = [await work.enqueue(n) for n in range(3)]
    running = RunningAttempts(LOG)
    closed, stopping = asyncio.Event(), asyncio.Event()
    writer = CompletionWriter(store, running, retention_ms=60_000, log=LOG, closed=closed)
    held_before_start: list[int] = []

    def start(queue: str, claimed: ClaimedJob) -> None:
        held_before_start.append(len(running))
        running.add(RunningJob(queue, claimed.id, claimed.attempt, f"w1/{claimed.attempt}"))

    fetcher = Fetcher(
        store,
        running,
        writer,
        start,
        queues=[QUEUE],
        worker_id="w1",
        hostname="host",
        pid=1,
        concurrency=2,
        lease_ms=LEASE_MS,
        burst=False,
        burst_scheduled=False,
        recycling=None,
        stopping=stopping,
        log=LOG,
    )
    task = asyncio.create_task(fetcher.run())
    try:
        await wait_until(lambda: len(running) == 2, timeout=5)
        states = [await h.state() for h in handles]
        assert sorted(states) == sorted([JobState.ACTIVE, JobState.ACTIVE, JobState.QUEUED])

        first = running.values()[0]
        running.remove(first, end_pending=False)  # a slot is free: the third job is claimed
        await wait_until(lambda: len(held_before_start) == 3, timeout=5)
        assert max(held_before_start) < 2  # never more attempts than slots
        assert [await h.state() for h in handles] == [JobState.ACTIVE] * 3
    finally:
        stopping.set()
        running.slot_freed.set()
        await asyncio.wait_for(task, 5)


async def test_the_control_listener_cancels_the_attempt_whose_cancellation_is_asked(
    registry: Registry, store: Store
) -> None:
    @registry.job()
    async def slow() -> None: ...

    handle = await slow.enqueue()
    # before the claim, as a worker does
    positions = await store.control.newest_control_ids([QUEUE])
    job = await claim_one(store, "w1")
    job.task = asyncio.create_task(asyncio.Event().wait())  # the attempt, still running
    running = RunningAttempts(LOG)
    running.add(job)
    listener = ControlListener(store, running, positions, log=LOG, closed=asyncio.Event())
    task = asyncio.create_task(listener.run())
    try:
        assert await handle.cancel() is CancelOutcome.REQUESTED
        await wait_until(lambda: job.abort is not None, timeout=5)
        assert isinstance(job.abort, Cancelled)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(job.task, 5)
        assert job.task.cancelled()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)


async def test_the_reclaimer_takes_back_a_job_whose_lease_expired(
    registry: Registry, store: Store
) -> None:
    @registry.job()
    async def work() -> None: ...

    handle = await work.enqueue()
    await claim_one(store, "a-worker-that-died", lease_ms=50)
    reclaimer = Reclaimer(
        store,
        [QUEUE],
        max_lost=registry.settings.max_lost,
        lease_ms=LEASE_MS,
        retention_ms=60_000,
        log=LOG,
        closed=asyncio.Event(),
    )

    async def taken_back() -> bool:
        await reclaimer.reclaim()
        return await handle.state() is JobState.QUEUED

    await wait_until(taken_back, timeout=5, interval=0.02)
    (attempt,) = (await handle.info()).attempts
    assert attempt.outcome is AttemptOutcome.LOST


async def test_the_heartbeat_lists_the_worker_with_what_it_runs(
    registry: Registry, store: Store
) -> None:
    @registry.job()
    async def work() -> None: ...

    await work.enqueue()
    running = RunningAttempts(LOG)
    running.add(await claim_one(store, "w1"))
    heartbeat = Heartbeat(
        store,
        running,
        lambda: 7,
        worker_id="w1",
        hostname="host",
        pid=1,
        queues=[QUEUE],
        concurrency=4,
        started_at=1.0,
        lease=30.0,
        interval=10.0,
        log=LOG,
        closed=asyncio.Event(),
    )
    await heartbeat.beat()
    (listed,) = await registry.workers()
    assert (listed.id, listed.busy, listed.jobs_done, listed.concurrency) == ("w1", 1, 7, 4)
