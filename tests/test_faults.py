"""Fault injection with real processes: SIGKILLed workers, poison jobs, CPU-bound handlers."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator

import pytest

from jobmaster import AttemptOutcome, JobState, Registry
from tests.conftest import start_worker, wait_until

APP = "apps.procapp:registry"


@pytest.fixture
async def app(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Registry]:
    monkeypatch.setenv("JOBMASTER_REDIS_URL", redis_url)
    from tests.apps import procapp

    assert procapp.registry.settings.redis_url == redis_url
    yield procapp.registry
    await procapp.registry.aclose()


async def _active(app: Registry, n: int) -> bool:
    return (await app.count_jobs("default"))[JobState.ACTIVE] == n


def stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=30)
    return out


async def test_a_killed_workers_job_runs_again_after_its_lease(
    app: Registry, redis_url: str
) -> None:
    from tests.apps.procapp import sleepy

    handle = await sleepy.enqueue(30)
    doomed = start_worker(APP, redis_url, "--lease", "1")
    await wait_until(lambda: _active(app, 1), timeout=10)
    doomed.kill()
    doomed.communicate(timeout=10)

    survivor = start_worker(APP, redis_url, "--lease", "1", "--grace", "0")
    try:
        job = await wait_until(lambda: _with_attempts(handle.info(), 2), timeout=15)
        assert job.attempts[0].outcome is AttemptOutcome.LOST
        assert job.attempts[0].error is not None
        assert job.attempts[0].error.type == "LeaseExpired"
        assert job.attempts[0].pid == doomed.pid
        assert job.attempts[1].pid == survivor.pid
        assert job.state is JobState.ACTIVE
    finally:
        stop(survivor)


async def _failed(state) -> bool:  # type: ignore[no-untyped-def]
    return (await state) is JobState.FAILED


async def _with_attempts(info, n: int):  # type: ignore[no-untyped-def]
    job = await info
    return job if len(job.attempts) >= n and job.attempts[n - 1].outcome is None else None


async def test_a_poison_job_fails_after_a_bounded_number_of_lost_attempts(
    app: Registry, redis_url: str
) -> None:
    from tests.apps.procapp import kill_worker, record

    poison = await kill_worker.enqueue()
    deaths = 0
    while True:
        assert deaths < 10, "the poison job kept being delivered"
        worker = start_worker(APP, redis_url, "--lease", "0.3", "--grace", "0")
        # each worker first takes the job back from the dead one (once its lease expired)
        await wait_until(
            lambda w=worker: w.poll() is not None or _failed(poison.state()), timeout=30
        )
        if worker.poll() is None:
            stop(worker)
            break
        worker.communicate(timeout=10)
        assert worker.returncode == -signal.SIGKILL
        deaths += 1
    job = await poison.info()
    assert job.error is not None
    assert job.error.type == "TooManyLostAttempts"
    assert [a.outcome for a in job.attempts] == [AttemptOutcome.LOST] * 3
    assert deaths == 3

    # the queue keeps moving for everyone else
    ok = await record.enqueue(7)
    survivor = start_worker(APP, redis_url, "--burst")
    survivor.communicate(timeout=30)
    assert await ok.result(timeout=5) == 7


async def test_a_cpu_bound_job_longer_than_the_lease_runs_once(
    app: Registry, redis_url: str
) -> None:
    from tests.apps.procapp import spin

    handle = await spin.enqueue(3.0)  # three times the lease, holding the GIL
    workers = [start_worker(APP, redis_url, "--lease", "1") for _ in range(2)]
    try:
        assert await handle.result(timeout=30) > 0
    finally:
        outputs = [stop(w) for w in workers]
    job = await handle.info()
    assert [a.outcome for a in job.attempts] == [AttemptOutcome.SUCCEEDED], outputs


async def test_producers_get_a_clear_error_when_redis_is_down(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import time

    from jobmaster import RedisUnavailable
    from jobmaster.embedded import EmbeddedRedis

    server = EmbeddedRedis()
    server.start()
    registry = Registry(server.url, config_dir=tmp_path, environ={})

    @registry.job()
    async def add(a: int, b: int) -> int:
        return a + b

    handle = await add.enqueue(1, 2)
    server.stop()
    try:
        started = time.monotonic()
        with pytest.raises(RedisUnavailable, match=r"enqueue failed.*did not answer"):
            await add.enqueue(3, 4)
        with pytest.raises(RedisUnavailable, match="reading job"):
            await handle.info()
        with pytest.raises(RedisUnavailable, match="counting jobs"):
            await registry.count_jobs("default")
        assert time.monotonic() - started < 15  # a bounded retry, then the error
        server.start()  # same port: the registry reconnects by itself
        again = await add.enqueue(5, 6)
        assert (await again.info()).arguments == {"a": 5, "b": 6}
    finally:
        await registry.aclose()
        server.close()


async def test_a_burst_worker_stops_when_told_while_redis_is_down(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import time

    from jobmaster.embedded import EmbeddedRedis
    from jobmaster.worker import Worker

    server = EmbeddedRedis()
    server.start()
    registry = Registry(server.url, config_dir=tmp_path, environ={})
    release = asyncio.Event()

    @registry.job()
    async def answer() -> int:
        await release.wait()
        return 42

    worker = Worker(registry, burst=True, install_signal_handlers=False, echo_job_logs=False)
    try:
        await answer.enqueue()
        task = asyncio.create_task(worker.run())
        await wait_until(lambda: bool(worker._running), timeout=10)
        server.stop()
        release.set()  # its completion cannot be written now: the burst waits for that
        await wait_until(lambda: worker._writer.unrecorded == 1 and not worker._running, timeout=10)
        await asyncio.sleep(0.5)
        assert not task.done()
        started = time.monotonic()
        worker.stop()
        await asyncio.wait_for(task, 30)
        # its background writer gives up at once, then a bounded last try to record (about
        # 2 s of backoff); not the 5 s allowed to background tasks to stop on their own
        assert time.monotonic() - started < 4.5
    finally:
        await registry.aclose()
        server.close()
