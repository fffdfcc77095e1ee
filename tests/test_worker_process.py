"""Real `jobmaster worker` processes: burst runs, signals, graceful shutdown, hand-back."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import AsyncIterator

import pytest

from jobmaster import AttemptOutcome, JobState, Registry
from tests.conftest import start_worker, wait_until

APP = "apps.procapp:registry"


@pytest.fixture
async def app(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Registry]:
    """The test application's registry, as the worker process imports it."""
    monkeypatch.setenv("JOBMASTER_REDIS_URL", redis_url)
    from tests.apps import procapp

    assert procapp.registry.settings.redis_url == redis_url  # one server per session
    yield procapp.registry
    await procapp.registry.aclose()


def finish(process: subprocess.Popen[str], timeout: float = 20) -> tuple[int, str]:
    out, _ = process.communicate(timeout=timeout)
    return process.returncode, out


async def test_burst_worker_runs_jobs_and_exits_zero(app: Registry, redis_url: str) -> None:
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
    app: Registry, redis_url: str, sig: signal.Signals
) -> None:
    from tests.apps.procapp import sleepy

    handles = await sleepy.enqueue_many([(0.5,)] * 4)
    worker = start_worker(APP, redis_url, "--grace", "10")
    await wait_until(lambda: _count(app, JobState.ACTIVE, 4), timeout=10)
    worker.send_signal(sig)
    code, out = finish(worker)
    assert code == 0, out
    for handle in handles:
        assert await handle.result(timeout=1) == 0.5
        assert len((await handle.info()).attempts) == 1


async def _count(app: Registry, state: JobState, expected: int) -> bool:
    return (await app.count_jobs("default"))[state] == expected


async def test_jobs_past_the_grace_period_are_handed_back_at_once(
    app: Registry, redis_url: str
) -> None:
    from tests.apps.procapp import sleepy, sync_sleepy

    slow_async = await sleepy.enqueue(30)
    slow_sync = await sync_sleepy.enqueue(30)
    worker = start_worker(APP, redis_url, "--grace", "0.2")
    await wait_until(lambda: _count(app, JobState.ACTIVE, 2), timeout=10)
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


async def test_handed_back_job_is_run_by_the_next_worker(app: Registry, redis_url: str) -> None:
    from tests.apps.procapp import sleepy

    handle = await sleepy.enqueue(0.3)
    first = start_worker(APP, redis_url, "--grace", "0")
    await wait_until(lambda: _count(app, JobState.ACTIVE, 1), timeout=10)
    first.send_signal(signal.SIGTERM)
    assert finish(first)[0] == 0
    code, out = finish(start_worker(APP, redis_url, "--burst"))
    assert code == 0, out
    assert await handle.result(timeout=1) == 0.3
    job = await handle.info()
    assert [a.outcome for a in job.attempts] == [AttemptOutcome.LOST, AttemptOutcome.SUCCEEDED]
    assert job.attempts[0].pid != job.attempts[1].pid


async def test_second_signal_skips_the_grace_period(app: Registry, redis_url: str) -> None:
    from tests.apps.procapp import sleepy

    handle = await sleepy.enqueue(30)
    worker = start_worker(APP, redis_url, "--grace", "60")
    await wait_until(lambda: _count(app, JobState.ACTIVE, 1), timeout=10)
    worker.send_signal(signal.SIGTERM)
    worker.send_signal(signal.SIGINT)  # another signal: never merged with the first
    code, out = finish(worker, timeout=10)
    assert code == 0, out
    assert "second signal" in out
    assert (await handle.info()).state is JobState.QUEUED
