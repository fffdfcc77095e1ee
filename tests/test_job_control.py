"""Operations on jobs that have not finished: cancel, reschedule, update, retry, and their
races with workers claiming and promoting the same jobs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable

import pytest

from jobmaster import (
    AttemptOutcome,
    CancelOutcome,
    Context,
    InvalidArguments,
    InvalidState,
    JobCancelled,
    JobState,
    Registry,
    Retry,
)
from jobmaster.codec import pack
from jobmaster.records import job_record
from jobmaster.store import Claim, JobOperation, NewJob, Outcome, Store
from jobmaster.testing import run_jobs
from jobmaster.transport.clients import async_client
from jobmaster.worker import Worker
from tests.conftest import wait_until

pytestmark = pytest.mark.deployments


@pytest.fixture
async def live_worker(registry: Registry) -> AsyncIterator[Worker]:
    """A worker running in this process (created after the test's jobs are declared)."""
    workers: list[tuple[Worker, asyncio.Task[None]]] = []

    def start() -> Worker:
        worker = Worker(registry, install_signal_handlers=False, echo_job_logs=False, grace=1)
        workers.append((worker, asyncio.create_task(worker.run())))
        return worker

    yield start  # type: ignore[misc]
    for worker, task in workers:
        worker.stop()
        await asyncio.wait_for(task, 15)


async def test_cancelling_a_queued_job_means_it_never_runs(registry: Registry) -> None:
    ran = []

    @registry.job()
    async def work(n: int) -> None:
        ran.append(n)

    handle = await work.enqueue(1)
    assert await handle.cancel() is CancelOutcome.CANCELLED
    assert await run_jobs(registry) == 0
    assert ran == []
    job = await handle.info()
    assert job.state is JobState.CANCELLED
    assert job.attempts == []
    assert [j.id for j in await registry.list_jobs("default", JobState.CANCELLED)] == [handle.id]
    with pytest.raises(JobCancelled):
        await handle.result(timeout=1)


async def test_cancelling_a_scheduled_job(registry: Registry) -> None:
    @registry.job()
    async def later() -> None: ...

    handle = await later.options(delay=60).enqueue()
    assert await handle.cancel(reason="not needed") is CancelOutcome.CANCELLED
    job = await handle.info()
    assert job.state is JobState.CANCELLED
    assert job.error is not None
    assert job.error.message == "not needed"
    assert (await registry.count_jobs("default"))[JobState.SCHEDULED] == 0


async def test_cancelling_a_running_async_job_cancels_it_through_asyncio(
    registry: Registry, live_worker
) -> None:  # type: ignore[no-untyped-def]
    started = asyncio.Event()
    stopped = []

    @registry.job(retry=Retry(max_attempts=3))
    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            stopped.append(True)
            raise

    live_worker()
    handle = await forever.enqueue()
    await asyncio.wait_for(started.wait(), 10)
    assert await handle.cancel() is CancelOutcome.REQUESTED
    with pytest.raises(JobCancelled):
        await handle.result(timeout=10)
    job = await handle.info()
    assert job.state is JobState.CANCELLED
    assert [a.outcome for a in job.attempts] == [AttemptOutcome.CANCELLED]  # no retry
    assert stopped == [True]


async def test_cancelling_a_running_sync_job_sets_its_flag(registry: Registry, live_worker) -> None:  # type: ignore[no-untyped-def]
    seen = []

    @registry.job()
    def spin(ctx: Context) -> None:
        deadline = time.monotonic() + 30
        while not ctx.cancelled.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append(ctx.cancelled.is_set())

    live_worker()
    handle = await spin.enqueue()
    await wait_until(lambda: _is(handle, JobState.ACTIVE), timeout=10)
    assert await handle.cancel() is CancelOutcome.REQUESTED
    await wait_until(lambda: _is(handle, JobState.CANCELLED), timeout=10)
    await wait_until(lambda: seen, timeout=10)
    assert seen == [True]


async def _is(handle, state: JobState) -> bool:  # type: ignore[no-untyped-def]
    return (await handle.state()) is state


async def test_a_finished_job_cannot_be_cancelled_and_the_error_says_why(
    registry: Registry,
) -> None:
    @registry.job()
    async def quick() -> int:
        return 1

    handle = await quick.enqueue()
    await run_jobs(registry)
    with pytest.raises(InvalidState, match="already finished: it succeeded") as caught:
        await handle.cancel()
    assert caught.value.state == "succeeded"


async def test_reschedule_moves_waiting_jobs_and_refuses_running_ones(
    registry: Registry, live_worker
) -> None:  # type: ignore[no-untyped-def]
    @registry.job()
    async def work(n: int) -> int:
        return n

    later = await work.options(delay=3600).enqueue(1)
    assert await later.reschedule() is JobState.QUEUED  # to now
    queued = await work.enqueue(2)
    assert await queued.reschedule(delay=3600) is JobState.SCHEDULED
    job = await queued.info()
    assert job.scheduled_for is not None
    assert job.scheduled_for.timestamp() > time.time() + 3500
    live_worker()
    assert await later.result(timeout=10) == 1
    assert await queued.state() is JobState.SCHEDULED  # moved away: it did not run
    with pytest.raises(InvalidState, match="only scheduled or queued jobs can be rescheduled"):
        await later.reschedule(delay=10)


async def test_update_changes_arguments_and_priority_of_a_waiting_job(
    registry: Registry,
) -> None:
    order = []

    @registry.job()
    async def work(n: int) -> int:
        order.append(n)
        return n * 10

    first = await work.enqueue(1)
    second = await work.enqueue(2)
    assert await second.update(priority=9, arguments={"n": 20}) is JobState.QUEUED
    with pytest.raises(InvalidArguments, match="valid integer"):
        await first.update(arguments=["not a number"])
    assert (await first.info()).arguments == {"n": 1}  # unchanged by the refused update
    await run_jobs(registry, concurrency=1)
    assert order == [20, 1]  # the raised priority ran first, with its new argument
    assert await second.result() == 200
    assert (await second.info()).priority == 9
    with pytest.raises(InvalidState):
        await second.update(priority=1)


async def test_retry_runs_a_failed_job_again_and_keeps_its_history(registry: Registry) -> None:
    fail = [True]

    @registry.job(retry=Retry(max_attempts=1))
    async def flaky() -> str:
        if fail[0]:
            raise ValueError("not yet")
        return "done"

    handle = await flaky.enqueue()
    await run_jobs(registry)
    assert await handle.state() is JobState.FAILED
    fail[0] = False
    assert await handle.retry() is JobState.QUEUED
    await run_jobs(registry)
    assert await handle.result() == "done"
    job = await handle.info()
    assert [a.outcome for a in job.attempts] == [AttemptOutcome.FAILED, AttemptOutcome.SUCCEEDED]
    assert job.error is None
    with pytest.raises(InvalidState, match="only failed or cancelled jobs can be retried"):
        await handle.retry()


# -- races -----------------------------------------------------------------------------------


@pytest.fixture
async def two_clients(redis_url: str) -> AsyncIterator[tuple[Store, Store]]:
    first, second = Store(async_client(redis_url)), Store(async_client(redis_url))
    yield first, second
    await first.close()
    await second.close()


RECORD = pack(job_record("noop", pack({}), 0, 0))


async def test_cancel_racing_a_claim_gives_one_consistent_answer(
    two_clients: tuple[Store, Store],
) -> None:
    worker_side, operator_side = two_clients
    outcomes = {"cancelled": 0, "requested": 0}
    for round_ in range(300):
        job_id = f"c{round_}"
        await worker_side.jobs.enqueue("race", [NewJob(job_id, RECORD, 0)])
        claim, answer = await _race(
            worker_side.jobs.claim("race", "w", 1, 60_000, "host", 1),
            operator_side.control.cancel("race", job_id, "race"),
            round_,
        )
        claimed = [j.id for j in claim.jobs]
        state = await worker_side.inspection.state("race", job_id)
        if answer == JobOperation(Outcome.DONE, JobState.CANCELLED):
            outcomes["cancelled"] += 1
            assert claimed == []  # never delivered
            assert state is JobState.CANCELLED
        else:
            assert answer == JobOperation(Outcome.REQUESTED, JobState.ACTIVE)
            outcomes["requested"] += 1
            assert claimed == [job_id]  # the worker has it and is told to stop
            assert state is JobState.ACTIVE
            lease = _lease(job_id)
            lost, cancel = await worker_side.leases.renew("race", [lease], 60_000)
            assert (lost, cancel) == ([], [lease])
            await worker_side.jobs.finish("race", [_cancelled(job_id)], 60_000)
            assert await worker_side.inspection.state("race", job_id) is JobState.CANCELLED
    print(f"\ncancel vs claim, 300 rounds: {outcomes}")


async def test_reschedule_racing_a_claim_gives_one_consistent_answer(
    two_clients: tuple[Store, Store],
) -> None:
    worker_side, operator_side = two_clients
    outcomes: dict[str, int] = {}
    for round_ in range(300):
        job_id = f"r{round_}"
        await worker_side.jobs.enqueue("race", [NewJob(job_id, RECORD, 0)])
        claim, answer = await _race(
            worker_side.jobs.claim("race", "w", 1, 60_000, "host", 1),
            operator_side.control.reschedule("race", job_id, 3_600_000),
            round_,
        )
        outcomes[str(answer.state)] = outcomes.get(str(answer.state), 0) + 1
        claimed = [j.id for j in claim.jobs]
        if answer == JobOperation(Outcome.DONE, JobState.SCHEDULED):
            assert claimed == []
            assert await worker_side.inspection.state("race", job_id) is JobState.SCHEDULED
        else:
            assert answer == JobOperation(Outcome.REFUSED, JobState.ACTIVE)
            assert claimed == [job_id]
            await worker_side.jobs.finish("race", [_cancelled(job_id)], 60_000)
    # nothing that was moved away is ever claimed afterwards
    assert (await worker_side.jobs.claim("race", "w", 1000, 60_000, "host", 1)).jobs == []
    print(f"\nreschedule vs claim, 300 rounds: {outcomes}")


async def test_reschedule_racing_promotion_never_runs_the_job_early(
    two_clients: tuple[Store, Store],
) -> None:
    worker_side, operator_side = two_clients
    for round_ in range(200):
        job_id = f"p{round_}"
        await worker_side.jobs.enqueue("race", [NewJob(job_id, RECORD, 0, delay_ms=1)])
        await asyncio.sleep(0.002)  # due now
        _, answer = await asyncio.gather(
            worker_side.jobs.promote("race"),
            operator_side.control.reschedule("race", job_id, 3_600_000),
        )
        # whether it was promoted first or not, it is moved
        assert answer == JobOperation(Outcome.DONE, JobState.SCHEDULED)
        assert await worker_side.inspection.state("race", job_id) is JobState.SCHEDULED
    assert (await worker_side.jobs.claim("race", "w", 1000, 60_000, "host", 1)).jobs == []


async def _race(
    claim: Awaitable[Claim], operation: Awaitable[JobOperation], round_: int
) -> tuple[Claim, JobOperation]:
    """Send both at once, in an order that alternates, over separate connections."""
    if round_ % 2:
        answer, claimed = await asyncio.gather(operation, claim)
        return claimed, answer
    return await asyncio.gather(claim, operation)


def _lease(job_id: str):  # type: ignore[no-untyped-def]
    from jobmaster.store import Lease

    return Lease(job_id, "w/1")


def _cancelled(job_id: str):  # type: ignore[no-untyped-def]
    from jobmaster.store import Completion

    return Completion(job_id, "w/1", "cancelled", "cancelled", error_type="Cancelled")


async def test_retrying_a_job_that_is_still_waiting_is_refused(registry: Registry) -> None:
    @registry.job()
    async def waiting() -> None: ...

    handle = await waiting.enqueue()
    with pytest.raises(InvalidState, match="is queued; only failed or cancelled") as caught:
        await handle.retry()
    assert caught.value.state == "queued"
