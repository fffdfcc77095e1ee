"""Middleware: the hooks run around enqueues and attempts, in order, and a failing hook is
logged without losing its job."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import structlog

from jobmaster import (
    AttemptEnd,
    AttemptInfo,
    EnqueueRequest,
    JobState,
    Middleware,
    Registry,
    Retry,
)
from jobmaster.testing import run_jobs


class Recorder(Middleware):
    """Writes each hook it sees into a shared list, tagged with its own name."""

    def __init__(self, name: str, calls: list[str]) -> None:
        self.name = name
        self.calls = calls

    def before_enqueue(self, request: EnqueueRequest) -> None:
        self.calls.append(f"{self.name}.before_enqueue {request.name} x{request.count}")

    def after_enqueue(self, request: EnqueueRequest, job_ids: Sequence[str]) -> None:
        self.calls.append(f"{self.name}.after_enqueue {len(job_ids)}")

    def before_attempt(self, attempt: AttemptInfo) -> None:
        self.calls.append(f"{self.name}.before_attempt {attempt.name} #{attempt.attempt}")

    def after_attempt(self, attempt: AttemptInfo, end: AttemptEnd) -> None:
        self.calls.append(f"{self.name}.after_attempt {end.outcome}->{end.next_state}")

    def on_final(self, attempt: AttemptInfo, end: AttemptEnd) -> None:
        self.calls.append(f"{self.name}.on_final {end.next_state}")


class Broken(Middleware):
    """Every hook raises."""

    def before_enqueue(self, request: EnqueueRequest) -> None:
        raise RuntimeError("before_enqueue broke")

    def after_enqueue(self, request: EnqueueRequest, job_ids: Sequence[str]) -> None:
        raise RuntimeError("after_enqueue broke")

    def before_attempt(self, attempt: AttemptInfo) -> None:
        raise RuntimeError("before_attempt broke")

    def after_attempt(self, attempt: AttemptInfo, end: AttemptEnd) -> None:
        raise RuntimeError("after_attempt broke")

    def on_final(self, attempt: AttemptInfo, end: AttemptEnd) -> None:
        raise RuntimeError("on_final broke")


async def test_hooks_run_in_order_then_in_reverse(registry: Registry) -> None:
    calls: list[str] = []
    registry.use(Recorder("a", calls))
    registry.use(Recorder("b", calls))

    @registry.job(retry=Retry(max_attempts=2, backoff=0, jitter=False))
    def flaky(fail: bool) -> None:
        if fail and not calls.count("a.after_attempt failed->scheduled"):
            raise RuntimeError("first try fails")

    handle = await flaky.enqueue(True)
    await run_jobs(registry)

    assert (await handle.info()).state == JobState.SUCCEEDED
    assert calls == [
        "a.before_enqueue flaky x1",
        "b.before_enqueue flaky x1",
        "b.after_enqueue 1",
        "a.after_enqueue 1",
        "a.before_attempt flaky #1",
        "b.before_attempt flaky #1",
        "b.after_attempt failed->scheduled",
        "a.after_attempt failed->scheduled",
        "a.before_attempt flaky #2",
        "b.before_attempt flaky #2",
        "b.after_attempt succeeded->succeeded",
        "a.after_attempt succeeded->succeeded",
        "b.on_final succeeded",
        "a.on_final succeeded",
    ]


async def test_a_failing_hook_is_logged_and_the_job_goes_on(registry: Registry) -> None:
    calls: list[str] = []
    registry.use(Broken())
    registry.use(Recorder("after", calls))

    @registry.job()
    def add(a: int, b: int) -> int:
        return a + b

    with structlog.testing.capture_logs() as logs:
        handle = await add.enqueue(1, 2)
        many = await add.enqueue_many([(i, i) for i in range(3)])
        await run_jobs(registry)

    assert await handle.result(timeout=5) == 3
    assert [await h.result(timeout=5) for h in many] == [0, 2, 4]
    assert calls.count("after.on_final succeeded") == 4
    broken = sorted({e["hook"] for e in logs if e.get("middleware") == "Broken"})
    assert broken == [
        "after_attempt",
        "after_enqueue",
        "before_attempt",
        "before_enqueue",
        "on_final",
    ]


def test_enqueue_sync_runs_the_hooks(registry: Registry) -> None:
    calls: list[str] = []
    registry.use(Recorder("a", calls))

    @registry.job()
    def noop() -> None:
        pass

    noop.enqueue_sync()
    assert calls == ["a.before_enqueue noop x1", "a.after_enqueue 1"]


def test_use_takes_a_middleware_instance(registry: Registry) -> None:
    with pytest.raises(TypeError, match=r"use Recorder\(\)"):
        registry.use(Recorder)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"takes a jobmaster\.Middleware"):
        registry.use(object())  # type: ignore[arg-type]
    assert registry.hooks is None


class Stamp(Middleware):
    """Puts a header on each enqueue and notes what the attempts see."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []

    def before_enqueue(self, request: EnqueueRequest) -> None:
        request.headers["stamp"] = f"{request.name}/{request.count}"

    def before_attempt(self, attempt: AttemptInfo) -> None:
        self.seen.append(dict(attempt.headers))


async def test_headers_set_at_enqueue_reach_the_attempts(registry: Registry) -> None:
    stamp = Stamp()
    registry.use(stamp)

    @registry.job(tags=["t"])
    async def echo(text: str) -> str:
        return text

    one = await echo.enqueue("a")
    many = await echo.enqueue_many([("b",), ("c",)])
    await run_jobs(registry)

    assert sorted(map(str, stamp.seen)) == sorted(
        map(str, [{"stamp": "echo/1"}, {"stamp": "echo/2"}, {"stamp": "echo/2"}])
    )
    assert await one.result(timeout=5) == "a"
    job = await many[1].info()
    assert (job.arguments, job.tags) == ({"text": "c"}, ["t"])


async def test_a_job_that_cannot_start_still_reaches_on_final(
    registry: Registry, redis_url: str, tmp_path: Path
) -> None:
    producer = Registry(redis_url, config_dir=tmp_path, environ={})

    @producer.job(name="convert")
    async def convert_text(value: str) -> None:
        pass

    calls: list[str] = []
    registry.use(Recorder("w", calls))

    @registry.job(name="convert")
    async def convert_number(value: int) -> None:
        pass

    try:
        handle = await convert_text.enqueue("not a number")
        await run_jobs(registry)
        assert (await handle.info()).state == JobState.FAILED
    finally:
        await producer.aclose()
    assert calls == ["w.on_final failed"]
