"""executor="process": sync handlers in child processes, which a timeout can kill."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from jobmaster import AttemptOutcome, ConfigError, Context, JobFailed, JobState, Registry
from tests.conftest import start_worker

APP = "apps.procapp:registry"


@pytest.fixture
async def app(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Registry]:
    monkeypatch.setenv("JOBMASTER_REDIS_URL", redis_url)
    from tests.apps import procapp

    yield procapp.registry
    await procapp.registry.aclose()


def burst(redis_url: str) -> str:
    worker = start_worker(APP, redis_url, "--burst")
    out, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0, out
    return out


async def test_process_handler_runs_in_a_child_and_returns_its_result(
    app: Registry, redis_url: str
) -> None:
    from tests.apps.procapp import crunch

    handles = await crunch.enqueue_many([(1000,), (2000,)])
    burst(redis_url)
    results = [await h.result(timeout=5) for h in handles]
    assert [r["total"] for r in results] == [sum(i * i for i in range(n)) for n in (1000, 2000)]
    job = await handles[0].info()
    worker_pid = job.attempts[0].pid
    assert all(r["pid"] != worker_pid for r in results)  # not the worker's own process


async def test_process_handler_errors_come_back_with_type_and_traceback(
    app: Registry, redis_url: str
) -> None:
    from tests.apps.procapp import crunch

    handle = await crunch.enqueue(5, fail=True)
    burst(redis_url)
    with pytest.raises(JobFailed) as caught:
        await handle.result(timeout=5)
    assert caught.value.error_type == "ArithmeticError"
    assert caught.value.error_message == "cannot crunch 5"
    assert "procapp.py" in (caught.value.remote_traceback or "")
    job = await handle.info()
    assert [a.outcome for a in job.attempts] == [AttemptOutcome.FAILED] * 2  # retried once


async def test_process_handler_past_its_timeout_is_killed(app: Registry, redis_url: str) -> None:
    from tests.apps.procapp import crunch_forever

    handle = await crunch_forever.enqueue(60)
    out = burst(redis_url)
    job = await handle.info()
    assert job.state is JobState.FAILED, out
    assert job.attempts[0].outcome is AttemptOutcome.TIMED_OUT
    assert job.attempts[0].finished_at is not None
    assert (job.attempts[0].finished_at - job.attempts[0].started_at).total_seconds() < 10


def test_process_executor_is_refused_where_it_cannot_work(registry: Registry) -> None:
    with pytest.raises(ConfigError, match="runs sync handlers"):

        @registry.job(executor="process")
        async def asynchronous() -> None: ...

    with pytest.raises(ConfigError, match="cannot take a Context"):

        @registry.job(executor="process")
        def with_context(ctx: Context) -> None: ...

    with pytest.raises(ConfigError, match="module-level function"):

        @registry.job(executor="process")
        def nested() -> None: ...


async def test_cancelling_a_process_job_kills_its_child(app: Registry, redis_url: str) -> None:
    import time

    from jobmaster import CancelOutcome
    from tests.apps.procapp import nap_in_process
    from tests.conftest import wait_until

    handle = await nap_in_process.enqueue(60)
    worker = start_worker(APP, redis_url)
    try:
        await wait_until(lambda: _active(handle), timeout=15)
        started = time.monotonic()
        assert await handle.cancel() is CancelOutcome.REQUESTED
        await wait_until(lambda: _cancelled(handle), timeout=15)
        assert time.monotonic() - started < 10  # not the 60 s the child would have slept
    finally:
        worker.terminate()
        out, _ = worker.communicate(timeout=30)
    job = await handle.info()
    assert [a.outcome for a in job.attempts] == [AttemptOutcome.CANCELLED], out


async def _active(handle) -> bool:  # type: ignore[no-untyped-def]
    return (await handle.state()) is JobState.ACTIVE


async def _cancelled(handle) -> bool:  # type: ignore[no-untyped-def]
    return (await handle.state()) is JobState.CANCELLED
