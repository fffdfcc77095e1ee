"""Running jobs in a worker: results, failures, attempt records, retries, timeouts and
payloads that cannot be run."""

import asyncio
import itertools
import os
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import structlog

from jobmaster import (
    AttemptOutcome,
    Context,
    InvalidArguments,
    JobFailed,
    JobState,
    Registry,
    Retry,
    RetryLater,
)
from jobmaster.codec import pack, unpack
from jobmaster.records import job_record
from jobmaster.testing import run_jobs
from jobmaster.worker import Worker
from tests.conftest import live_worker, wait_until

pytestmark = pytest.mark.deployments


JOBS_KEY = "jobmaster:{default}:jobs"
STREAM_0 = "jobmaster:{default}:stream:0"


async def burst(registry: Registry, **options: Any) -> Worker:
    """Run a burst worker to the end (scheduled retries included) and return it."""
    worker = Worker(
        registry,
        burst=True,
        burst_scheduled=True,
        install_signal_handlers=False,
        echo_job_logs=False,
        **options,
    )
    await asyncio.wait_for(worker.run(), 20)
    return worker


def overwrite_record(raw_redis: redis.Redis, job_id: str, name: str, args_bytes: bytes) -> None:
    """Replace a job's stored record, as a stale producer or a corruption would."""
    old = unpack(raw_redis.hget(JOBS_KEY, job_id))  # type: ignore[arg-type]
    raw_redis.hset(JOBS_KEY, job_id, pack(job_record(name, args_bytes, old["p"], old["c"])))


# -- results and failures ---------------------------------------------------------------------


async def test_result_comes_back(registry: Registry) -> None:
    @registry.job()
    async def add(a: int, b: int) -> int:
        return a + b

    @registry.job()
    def pair(a: int, b: int) -> tuple[int, int]:
        return (b, a)

    h1 = await add.enqueue(1, 2)
    h2 = await pair.enqueue(a=3, b=4)
    await run_jobs(registry)
    assert await h1.result(timeout=5) == 3
    assert await h2.result(timeout=5) == (4, 3)
    assert (await h1.info()).state is JobState.SUCCEEDED


async def test_handlers_get_each_argument_in_its_place(registry: Registry) -> None:
    @registry.job()
    async def ordered(a: str, b: str = "b", c: str = "c") -> str:
        return a + b + c

    @registry.job()
    def mixed(ctx: Context, a: str, /, b: str, *, c: str = "c", d: str = "d") -> str:
        return f"{ctx.attempt}:{a}{b}{c}{d}"

    handles = [
        await ordered.enqueue("x", c="z"),  # a default between two given values
        await ordered.enqueue(c="3", a="1", b="2"),  # keywords in another order
        await mixed.enqueue("p", "q", d="s"),
        await mixed.enqueue("p", c="r", b="q"),
    ]
    await run_jobs(registry)
    results = [await h.result(timeout=5) for h in handles]
    assert results == ["xbz", "123", "1:pqcs", "1:pqrd"]


async def test_failing_job_raises_job_failed_with_remote_traceback(registry: Registry) -> None:
    @registry.job(retry=Retry(max_attempts=1))
    def explode(n: int) -> int:
        raise ValueError(f"boom number {n}")  # the line the remote traceback must show

    handle = await explode.enqueue(7)
    await run_jobs(registry)
    with pytest.raises(JobFailed) as caught:
        await handle.result(timeout=5)
    error = caught.value
    assert error.job_id == handle.id
    assert error.error_type == "ValueError"
    assert error.error_message == "boom number 7"
    assert error.remote_traceback is not None
    assert 'raise ValueError(f"boom number {n}")' in error.remote_traceback
    assert Path(__file__).name in error.remote_traceback
    assert "boom number 7" in str(error)

    job = await handle.info()
    assert job.state is JobState.FAILED
    assert job.error is not None
    assert job.error.type == "ValueError"
    assert job.attempts[0].error is not None
    assert job.attempts[0].error.traceback == error.remote_traceback


async def test_attempt_record_says_who_ran_it_and_when(registry: Registry) -> None:
    @registry.job()
    async def noop() -> None:
        return None

    handle = await noop.enqueue()
    worker = await burst(registry)
    job = await handle.info()
    assert job.state is JobState.SUCCEEDED
    [attempt] = job.attempts
    assert attempt.number == 1
    assert attempt.worker_id == worker.id
    assert attempt.hostname == socket.gethostname()
    assert attempt.pid == os.getpid()
    assert attempt.finished_at is not None
    assert job.created_at <= attempt.started_at <= attempt.finished_at
    assert attempt.outcome is AttemptOutcome.SUCCEEDED
    assert attempt.error is None


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_logs_and_progress_are_on_the_attempt(registry: Registry, kind: str) -> None:
    if kind == "sync":

        @registry.job(name="report")
        def report_sync(ctx: Context, path: str) -> str:
            ctx.log.info("resizing", path=path, width=640)
            ctx.progress(0.5)
            ctx.log.warning("almost done")
            return path

        handler = report_sync
    else:

        @registry.job(name="report")
        async def report_async(ctx: Context, path: str) -> str:
            ctx.log.info("resizing", path=path, width=640)
            ctx.progress(0.5)
            await asyncio.sleep(0)
            ctx.log.warning("almost done")
            return path

        handler = report_async

    handle = await handler.enqueue("a.png")
    await run_jobs(registry)
    assert await handle.result(timeout=5) == "a.png"
    [attempt] = (await handle.info()).attempts
    assert [(line.level, line.event, line.fields) for line in attempt.logs] == [
        ("info", "resizing", {"path": "a.png", "width": 640}),
        ("warning", "almost done", {}),
    ]
    assert attempt.progress == 0.5
    assert attempt.logs_truncated is False
    assert attempt.finished_at is not None
    for line in attempt.logs:
        assert attempt.started_at - timedelta(seconds=1) <= line.at <= attempt.finished_at


# -- retries ----------------------------------------------------------------------------------


async def test_always_failing_job_is_retried_then_dead_lettered(registry: Registry) -> None:
    calls: list[int] = []

    @registry.job(retry=Retry(max_attempts=3, backoff=0.01))
    def flaky(ctx: Context) -> None:
        calls.append(ctx.attempt)
        raise RuntimeError(f"attempt {ctx.attempt} failed")

    handle = await flaky.enqueue()
    await run_jobs(registry)
    assert calls == [1, 2, 3]
    job = await handle.info()
    assert job.state is JobState.FAILED
    assert [a.number for a in job.attempts] == [1, 2, 3]
    assert [a.outcome for a in job.attempts] == [AttemptOutcome.FAILED] * 3
    assert [a.error.message for a in job.attempts if a.error] == [
        "attempt 1 failed",
        "attempt 2 failed",
        "attempt 3 failed",
    ]
    assert job.error is not None
    assert job.error.message == "attempt 3 failed"
    failed = await registry.list_jobs("default", JobState.FAILED)
    assert [s.id for s in failed] == [handle.id]
    assert failed[0].attempts == 3
    counts = await registry.count_jobs("default")
    assert counts[JobState.FAILED] == 1
    assert counts[JobState.SCHEDULED] == counts[JobState.QUEUED] == counts[JobState.ACTIVE] == 0
    with pytest.raises(JobFailed) as caught:
        await handle.result(timeout=5)
    assert caught.value.error_type == "RuntimeError"


async def test_retry_delays_follow_the_backoff(registry: Registry) -> None:
    @registry.job(retry=Retry(max_attempts=3, backoff=0.1, jitter=False))
    async def flaky() -> None:
        raise RuntimeError("nope")

    handle = await flaky.enqueue()
    await run_jobs(registry)
    attempts = (await handle.info()).attempts
    assert len(attempts) == 3
    gaps = []
    for before, after in itertools.pairwise(attempts):
        assert before.finished_at is not None
        gaps.append(after.started_at - before.finished_at)
    assert gaps[0] >= timedelta(seconds=0.1)
    assert gaps[1] >= timedelta(seconds=0.2)


async def test_job_failing_once_then_succeeding(registry: Registry) -> None:
    @registry.job(retry=Retry(max_attempts=3, backoff=0.01))
    def once(ctx: Context) -> str:
        if ctx.attempt == 1:
            raise ConnectionError("transient")
        return f"ok on {ctx.attempt}"

    handle = await once.enqueue()
    await run_jobs(registry)
    assert await handle.result(timeout=5) == "ok on 2"
    job = await handle.info()
    assert job.state is JobState.SUCCEEDED
    assert [a.outcome for a in job.attempts] == [AttemptOutcome.FAILED, AttemptOutcome.SUCCEEDED]
    assert job.attempts[0].error is not None
    assert job.attempts[0].error.type == "ConnectionError"
    assert job.attempts[1].error is None
    assert job.error is None


async def test_retry_later_reschedules(registry: Registry) -> None:
    @registry.job(retry=Retry(max_attempts=3, backoff=60))
    async def later(ctx: Context) -> int:
        if ctx.attempt == 1:
            raise RetryLater(0.05)
        return ctx.attempt

    handle = await later.enqueue()
    started = time.monotonic()
    await run_jobs(registry)
    # The 60 s backoff does not apply: RetryLater chose the delay.
    assert time.monotonic() - started < 10
    assert await handle.result(timeout=5) == 2
    first, second = (await handle.info()).attempts
    assert first.error is not None
    assert first.error.type == "RetryLater"
    assert first.finished_at is not None
    assert second.started_at - first.finished_at >= timedelta(seconds=0.05)


async def test_retry_later_counts_towards_max_attempts(registry: Registry) -> None:
    @registry.job(retry=Retry(max_attempts=2))
    async def forever_later() -> None:
        raise RetryLater(0.01)

    handle = await forever_later.enqueue()
    await run_jobs(registry)
    job = await handle.info()
    assert job.state is JobState.FAILED
    assert len(job.attempts) == 2


async def test_dont_retry_on_and_retry_on(registry: Registry) -> None:
    @registry.job(retry=Retry(max_attempts=3, backoff=0.01, dont_retry_on=(KeyError,)))
    def not_for_key_errors(kind: str) -> None:
        raise KeyError(kind) if kind == "key" else ValueError(kind)

    @registry.job(retry=Retry(max_attempts=3, backoff=0.01, retry_on=(ConnectionError,)))
    def only_connection_errors(kind: str) -> None:
        # ConnectionRefusedError is a ConnectionError: subclasses are retried too.
        raise ConnectionRefusedError(kind) if kind == "conn" else ValueError(kind)

    @registry.job(
        retry=Retry(
            max_attempts=3,
            backoff=0.01,
            retry_on=(OSError,),
            dont_retry_on=(FileNotFoundError,),
        )
    )
    def both(kind: str) -> None:
        raise FileNotFoundError(kind)

    handles = {
        "dont/key": await not_for_key_errors.enqueue("key"),
        "dont/value": await not_for_key_errors.enqueue("value"),
        "on/conn": await only_connection_errors.enqueue("conn"),
        "on/value": await only_connection_errors.enqueue("value"),
        "both": await both.enqueue("missing"),
    }
    await run_jobs(registry)
    attempts = {name: len((await h.info()).attempts) for name, h in handles.items()}
    assert attempts == {
        "dont/key": 1,
        "dont/value": 3,
        "on/conn": 3,
        "on/value": 1,
        "both": 1,
    }
    for handle in handles.values():
        assert (await handle.info()).state is JobState.FAILED


# -- timeouts ---------------------------------------------------------------------------------


async def test_async_handler_over_its_timeout_is_timed_out(registry: Registry) -> None:
    reached_end = []

    @registry.job(timeout=0.1, retry=Retry(max_attempts=1))
    async def sleepy() -> None:
        await asyncio.sleep(10)
        reached_end.append(True)

    handle = await sleepy.enqueue()
    started = time.monotonic()
    await run_jobs(registry)
    assert time.monotonic() - started < 5
    job = await handle.info()
    assert job.state is JobState.FAILED
    [attempt] = job.attempts
    assert attempt.outcome is AttemptOutcome.TIMED_OUT
    assert attempt.finished_at is not None
    assert timedelta(seconds=0.1) <= attempt.finished_at - attempt.started_at < timedelta(seconds=5)
    assert reached_end == []
    with pytest.raises(JobFailed) as caught:
        await handle.result(timeout=5)
    assert "timeout" in caught.value.error_message


async def test_sync_handler_over_its_timeout_is_timed_out_and_told_to_stop(
    registry: Registry,
) -> None:
    saw_cancelled: list[bool] = []
    stopped = threading.Event()

    @registry.job(timeout=0.2, retry=Retry(max_attempts=1))
    def grind(ctx: Context) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not ctx.cancelled.wait(0.01):
            pass
        saw_cancelled.append(ctx.cancelled.is_set())
        stopped.set()

    handle = await grind.enqueue()
    await run_jobs(registry)
    job = await handle.info()
    assert job.state is JobState.FAILED
    [attempt] = job.attempts
    assert attempt.outcome is AttemptOutcome.TIMED_OUT
    assert attempt.finished_at is not None
    # The attempt ends at the deadline, not when the thread chooses to return.
    assert timedelta(seconds=0.2) <= attempt.finished_at - attempt.started_at < timedelta(seconds=5)
    await wait_until(stopped.is_set, timeout=5)
    assert saw_cancelled == [True]


# -- payloads that cannot run -----------------------------------------------------------------


async def test_stored_arguments_that_no_longer_fit_fail_without_retry(
    registry: Registry, raw_redis: redis.Redis
) -> None:
    @registry.job(retry=Retry(max_attempts=3, backoff=0.01))
    def add(a: int, b: int) -> int:
        return a + b

    handle = await add.enqueue(1, 2)
    overwrite_record(raw_redis, handle.id, "add", pack({"a": "not-an-int", "b": 2}))
    await run_jobs(registry)
    with pytest.raises(JobFailed) as caught:
        await handle.result(timeout=5)
    assert caught.value.error_type == InvalidArguments.__name__
    assert "a" in caught.value.error_message
    job = await handle.info()
    assert job.state is JobState.FAILED
    assert len(job.attempts) == 1
    assert job.attempts[0].outcome is AttemptOutcome.FAILED
    assert job.arguments == {"a": "not-an-int", "b": 2}


async def test_unknown_handler_name_fails_without_retry(
    registry: Registry, redis_url: str, tmp_path: Path
) -> None:
    @registry.job()
    def known() -> None:
        return None

    producer = Registry(redis_url, config_dir=tmp_path, environ={})
    try:

        @producer.job(retry=Retry(max_attempts=3, backoff=0.01))
        def ghost() -> None:
            return None

        handle = await ghost.enqueue()
        await run_jobs(registry)  # a worker that does not know "ghost"
        with pytest.raises(JobFailed) as caught:
            await handle.result(timeout=5)
        assert "ghost" in caught.value.error_message
        job = await handle.info()
        assert job.state is JobState.FAILED
        assert len(job.attempts) == 1
    finally:
        await producer.aclose()


async def _worker_keeps_going(add: Any) -> None:
    handle = await add.enqueue(20, 22)
    assert await handle.result(timeout=5) == 42


async def _failed_ids(registry: Registry) -> set[str]:
    return {s.id for s in await registry.list_jobs("default", JobState.FAILED)}


@pytest.mark.parametrize("entry", [{"foo": "bar"}, {"id": "no-such-job"}], ids=["no-id", "ghost"])
async def test_undecodable_stream_entry_is_dead_lettered(
    registry: Registry, raw_redis: redis.Redis, entry: dict[str, str]
) -> None:
    @registry.job()
    async def add(a: int, b: int) -> int:
        return a + b

    async with live_worker(registry):
        await wait_until(lambda: raw_redis.exists(STREAM_0))  # the worker made its groups
        entry_id = raw_redis.xadd(STREAM_0, entry).decode()  # type: ignore[union-attr]
        invalid_id = f"invalid-{entry_id}"
        await wait_until(lambda: _has(registry, invalid_id), timeout=5)
        [summary] = [
            s for s in await registry.list_jobs("default", JobState.FAILED) if s.id == invalid_id
        ]
        assert summary.error is not None
        assert summary.error.type == "InvalidStreamEntry"
        job = await registry.get_job(invalid_id)
        assert job.state is JobState.FAILED
        assert job.error is not None
        assert job.error.type == "InvalidStreamEntry"
        assert raw_redis.xlen(STREAM_0) == 0  # trimmed by the claim that read it
        await _worker_keeps_going(add)


async def _has(registry: Registry, job_id: str) -> bool:
    return job_id in await _failed_ids(registry)


async def test_job_whose_arguments_are_not_msgpack_fails_with_decode_error(
    registry: Registry, raw_redis: redis.Redis
) -> None:
    @registry.job(retry=Retry(max_attempts=3, backoff=0.01))
    async def add(a: int, b: int) -> int:
        return a + b

    handle = await add.enqueue(1, 2)
    overwrite_record(raw_redis, handle.id, "add", b"\xc1 not msgpack")
    async with live_worker(registry):
        await wait_until(lambda: _has(registry, handle.id), timeout=5)
        [summary] = [
            s for s in await registry.list_jobs("default", JobState.FAILED) if s.id == handle.id
        ]
        assert summary.error is not None
        assert summary.error.type == "DecodeError"
        assert summary.attempts == 1
        await _worker_keeps_going(add)
        # What the producer sees: the job failed, with the worker's error.
        with pytest.raises(JobFailed) as caught:
            await handle.result(timeout=5)
        assert caught.value.error_type == "DecodeError"
        job = await handle.info()  # the job stays inspectable
        assert job.state is JobState.FAILED
        assert job.error is not None
        assert job.error.type == "DecodeError"
        assert len(job.attempts) == 1


# -- synchronous twins ------------------------------------------------------------------------


async def test_sync_twins_from_a_thread(registry: Registry) -> None:
    @registry.job()
    def add(a: int, b: int) -> int:
        return a + b

    @registry.job(retry=Retry(max_attempts=1))
    def explode() -> None:
        raise ValueError("sync boom")

    def produce() -> tuple[str, int, Any, str]:
        handle = add.enqueue_sync(2, 3)
        value = handle.result_sync(timeout=5)
        info = handle.info_sync()
        bad = explode.enqueue_sync()
        try:
            bad.result_sync(timeout=5)
        except JobFailed as exc:
            failure = exc.error_type
        else:
            failure = "no error"
        return handle.id, value, info, failure

    async with live_worker(registry):
        job_id, value, info, failure = await asyncio.to_thread(produce)
    assert value == 5
    assert failure == "ValueError"
    handle = registry.handle(job_id, "default")
    assert await handle.result(timeout=5) == 5
    assert await handle.info() == info
    assert info.state is JobState.SUCCEEDED
    registry.close()


async def test_a_lone_running_jobs_log_lines_are_written_while_it_runs(
    registry: Registry,
) -> None:
    release = asyncio.Event()

    @registry.job()
    async def long(ctx: Context) -> str:
        ctx.log.info("halfway", step=1)
        ctx.progress(0.5)
        async with asyncio.timeout(20):
            await release.wait()
        return "done"

    handle = await long.enqueue()

    async def logged() -> bool:
        attempts = (await handle.info()).attempts
        return bool(attempts) and [line.event for line in attempts[0].logs] == ["halfway"]

    async with live_worker(registry):
        await wait_until(logged, timeout=5)  # the only job is still running
        job = await handle.info()
        assert job.state == JobState.ACTIVE
        assert job.attempts[0].progress == 0.5
        release.set()
        assert await handle.result(timeout=10) == "done"


async def test_a_stream_holds_only_the_entries_not_yet_delivered(
    registry: Registry, raw_redis: redis.Redis
) -> None:
    """A claim trims what it read: behind a job that runs for a long time, entries neither
    wait in the stream nor pend in its consumer group; the job's lease guards its attempt."""
    release = asyncio.Event()

    @registry.job()
    async def slow() -> str:
        async with asyncio.timeout(20):
            await release.wait()
        return "slow"

    @registry.job()
    async def fast(n: int) -> int:
        return n

    async def slow_is_active() -> bool:
        return await slow_handle.state() is JobState.ACTIVE

    async with live_worker(registry):
        slow_handle = await slow.enqueue()
        await wait_until(slow_is_active)
        assert (raw_redis.xlen(STREAM_0), _pending(raw_redis)) == (0, 0)
        assert raw_redis.zscore("jobmaster:{default}:active", slow_handle.id) is not None
        handles = await fast.enqueue_many([(n,) for n in range(50)])
        assert [await h.result(timeout=10) for h in handles] == list(range(50))
        assert (raw_redis.xlen(STREAM_0), _pending(raw_redis)) == (0, 0)
        release.set()
        assert await slow_handle.result(timeout=10) == "slow"
        assert (raw_redis.xlen(STREAM_0), _pending(raw_redis)) == (0, 0)


def _pending(raw_redis: redis.Redis) -> int:
    return int(raw_redis.xpending(STREAM_0, "workers")["pending"])


async def test_every_background_loop_stops_when_the_worker_stops(registry: Registry) -> None:
    """No background loop (blocking reads of new work, timers, cancellations, remote
    commands, schedules) holds a stopping worker back until the stop's time limit. A
    cancelled blocking read of redis-py may linger: stopped 20 times, no worker waits."""

    @registry.job()
    async def quick() -> int:
        return 1

    with structlog.testing.capture_logs() as logs:
        for _ in range(10):
            handle = await quick.enqueue()
            await run_jobs(registry, timeout=20)
            assert await handle.result(timeout=1) == 1
        for _ in range(10):
            async with live_worker(registry) as worker:
                handle = await quick.enqueue()
                await handle.result(timeout=10)
                await wait_until(lambda w=worker: w.jobs_done == 1)
    late = [entry for entry in logs if entry["event"] == "background tasks did not stop in time"]
    assert not late, late
