"""Real `jobmaster worker` processes: burst runs, signals, graceful shutdown, hand-back."""

from __future__ import annotations

import signal
import time

import pytest

from jobmaster import AttemptOutcome, JobState, Registry
from jobmaster.models import WorkerInfo
from tests.conftest import PROCAPP as APP
from tests.conftest import finish, start_worker, wait_until


async def test_burst_worker_runs_jobs_and_exits_zero(procapp: Registry, redis_url: str) -> None:
    from tests.apps.procapp import add

    handles = await add.enqueue_many([(i, i) for i in range(50)])
    code, out = finish(start_worker(APP, redis_url, "--burst"))
    assert code == 0, out
    assert [await h.result(timeout=1) for h in handles] == [2 * i for i in range(50)]
    job = await handles[0].info()
    assert job.attempts[0].pid != 0
    assert job.attempts[0].outcome is AttemptOutcome.SUCCEEDED


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_lets_running_jobs_finish_then_exits_zero(
    procapp: Registry, redis_url: str, sig: signal.Signals
) -> None:
    from tests.apps.procapp import sleepy

    handles = await sleepy.enqueue_many([(0.5,)] * 4)
    worker = start_worker(APP, redis_url, "--grace", "10")
    await wait_until(lambda: _count(procapp, JobState.ACTIVE, 4), timeout=10)
    worker.send_signal(sig)
    code, out = finish(worker)
    assert code == 0, out
    for handle in handles:
        assert await handle.result(timeout=1) == 0.5
        assert len((await handle.info()).attempts) == 1


async def _count(procapp: Registry, state: JobState, expected: int) -> bool:
    return (await procapp.count_jobs("default"))[state] == expected


async def test_jobs_past_the_grace_period_are_handed_back_at_once(
    procapp: Registry, redis_url: str
) -> None:
    from tests.apps.procapp import sleepy, sync_sleepy

    slow_async = await sleepy.enqueue(30)
    slow_sync = await sync_sleepy.enqueue(30)
    worker = start_worker(APP, redis_url, "--grace", "0.2")
    await wait_until(lambda: _count(procapp, JobState.ACTIVE, 2), timeout=10)
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    code, out = finish(worker)
    assert code == 0, out
    assert time.monotonic() - started < 10
    for handle in (slow_async, slow_sync):
        job = await handle.info()
        assert job.state is JobState.QUEUED  # back in its queue, not waiting for a lease
        assert job.attempts[-1].outcome is AttemptOutcome.LOST
        assert job.attempts[-1].error is not None
        assert job.attempts[-1].error.type == "WorkerShutdown"


async def test_handed_back_job_is_run_by_the_next_worker(procapp: Registry, redis_url: str) -> None:
    from tests.apps.procapp import sleepy

    handle = await sleepy.enqueue(0.3)
    first = start_worker(APP, redis_url, "--grace", "0")
    await wait_until(lambda: _count(procapp, JobState.ACTIVE, 1), timeout=10)
    first.send_signal(signal.SIGTERM)
    assert finish(first)[0] == 0
    code, out = finish(start_worker(APP, redis_url, "--burst"))
    assert code == 0, out
    assert await handle.result(timeout=1) == 0.3
    job = await handle.info()
    assert [a.outcome for a in job.attempts] == [AttemptOutcome.LOST, AttemptOutcome.SUCCEEDED]
    assert job.attempts[0].pid != job.attempts[1].pid


async def test_second_signal_skips_the_grace_period(procapp: Registry, redis_url: str) -> None:
    from tests.apps.procapp import sleepy

    handle = await sleepy.enqueue(30)
    worker = start_worker(APP, redis_url, "--grace", "60")
    await wait_until(lambda: _count(procapp, JobState.ACTIVE, 1), timeout=10)
    worker.send_signal(signal.SIGTERM)
    worker.send_signal(signal.SIGINT)  # another signal: never merged with the first
    code, out = finish(worker, timeout=10)
    assert code == 0, out
    assert "second signal" in out
    assert (await handle.info()).state is JobState.QUEUED


async def test_supervisor_restarts_a_dead_child_and_forwards_signals(
    procapp: Registry, redis_url: str
) -> None:
    import os

    supervisor = start_worker(APP, redis_url, "--processes", "2", "--grace", "5")
    workers = await wait_until(lambda: _workers(procapp, 2), timeout=15)
    victim = workers[0].pid
    os.kill(victim, signal.SIGKILL)
    replaced = await wait_until(
        lambda: _workers(procapp, 2, without=victim), timeout=15
    )  # the dead one's heartbeat expires; a new child took its slot
    assert victim not in {w.pid for w in replaced}

    from tests.apps.procapp import add

    handles = await add.enqueue_many([(i, 1) for i in range(20)])
    assert [await h.result(timeout=10) for h in handles] == [i + 1 for i in range(20)]
    supervisor.send_signal(signal.SIGTERM)
    code, out = finish(supervisor)
    assert code == 0, out
    assert "worker process died; restarting it" in out
    children = [w.pid for w in replaced]
    for pid in children:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def _workers(procapp: Registry, n: int, without: int | None = None) -> list[WorkerInfo]:
    live = [w for w in await procapp.workers() if w.pid != without]
    alive = [w for w in live if _alive(w.pid)]
    return alive if len(alive) == n else []


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_supervised_burst_workers_exit_when_done(procapp: Registry, redis_url: str) -> None:
    from tests.apps.procapp import add

    handles = await add.enqueue_many([(i, 2) for i in range(200)])
    code, out = finish(start_worker(APP, redis_url, "--processes", "2", "--burst"))
    assert code == 0, out
    jobs = [await h.info() for h in handles]
    assert all(j.state is JobState.SUCCEEDED for j in jobs)
    assert len({j.attempts[0].pid for j in jobs}) >= 1


async def test_a_killed_worker_disappears_from_the_live_list(
    procapp: Registry, redis_url: str
) -> None:
    worker = start_worker(APP, redis_url, "--lease", "1")
    listed = await wait_until(lambda: procapp.workers(), timeout=15)
    assert [w.pid for w in listed] == [worker.pid]
    assert listed[0].queues == ["default"]
    assert listed[0].concurrency == 100
    worker.kill()
    worker.communicate(timeout=10)
    await wait_until(lambda: _none_listed(procapp), timeout=10)


async def _none_listed(procapp: Registry) -> bool:
    return not await procapp.workers()
