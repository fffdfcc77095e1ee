"""Arguments that cannot travel are refused at every door, naming the argument, and nothing
is written: integers beyond 64 bits, text that is not Unicode, NaN and infinity where the
type does not allow them, and payloads over ``max_payload``."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import pytest
import redis
from pydantic import AllowInfNan, Field, ValidationError

from jobmaster import (
    InvalidArguments,
    JobHandler,
    JobState,
    RateLimited,
    Registry,
    Retry,
    RetryLater,
)
from jobmaster.testing import run_jobs

Door = Callable[[Registry, JobHandler[Any, Any], tuple[Any, ...]], Awaitable[Any]]


def _many(handler: JobHandler[Any, Any], args: tuple[Any, ...]) -> Awaitable[Any]:
    return handler.enqueue_many([args, args])


DOORS: dict[str, Door] = {
    "enqueue": lambda r, h, a: h.enqueue(*a),
    "enqueue_sync": lambda r, h, a: asyncio.to_thread(h.enqueue_sync, *a),
    "options": lambda r, h, a: h.options(priority=3, delay=5).enqueue(*a),
    "enqueue_many": lambda r, h, a: _many(h, a),
    "enqueue_many_sync": lambda r, h, a: asyncio.to_thread(h.enqueue_many_sync, [a, a]),
    "by_name": lambda r, h, a: r.enqueue(h.name, list(a)),
}


@pytest.fixture
def jobs(registry: Registry) -> dict[str, JobHandler[Any, Any]]:
    @registry.job()
    def count(n: int) -> None: ...

    @registry.job()
    def say(text: str, more: list[str]) -> None: ...

    @registry.job()
    def measure(x: float) -> None: ...

    @registry.job()
    def keep(value: Any) -> None: ...

    @registry.job()
    def keep_dict(value: dict[str, Any]) -> None: ...

    return {"count": count, "say": say, "measure": measure, "keep": keep, "keep_dict": keep_dict}


BAD_CALLS: list[tuple[str, str, tuple[Any, ...], str]] = [
    ("int-2**70", "count", (2**70,), r"argument 'n' cannot be stored: it holds an integer beyond"),
    ("int-minus-2**64", "count", (-(2**64),), r"argument 'n' .* integer beyond 64 bits"),
    ("lone-surrogate", "say", ("\ud800", []), r"argument 'text' .* not valid Unicode"),
    ("surrogate-in-list", "say", ("ok", ["a", "b\udfff"]), r"argument 'more' .* not valid Unic"),
    ("float-nan", "measure", (math.nan,), r"x: Input should be a finite number"),
    ("float-inf", "measure", (-math.inf,), r"x: Input should be a finite number"),
    ("any-inf", "keep", (math.inf,), r"argument 'value' holds NaN or infinity"),
    ("any-nested-nan", "keep", ([1, {"a": math.nan}],), r"argument 'value' holds NaN"),
    ("dict-nan", "keep_dict", ({"a": [0.5, math.nan]},), r"argument 'value' holds NaN"),
    ("over-max-payload", "say", ("x" * (3 * 1024 * 1024), []), r"JOBMASTER_MAX_PAYLOAD"),
]


@pytest.mark.parametrize("door", list(DOORS))
@pytest.mark.parametrize(
    ("job", "args", "expected"), [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS]
)
async def test_unstorable_arguments_are_refused_at_every_door(
    registry: Registry,
    jobs: dict[str, JobHandler[Any, Any]],
    raw_redis: redis.Redis,
    door: str,
    job: str,
    args: tuple[Any, ...],
    expected: str,
) -> None:
    with pytest.raises(InvalidArguments, match=expected) as info:
        await DOORS[door](registry, jobs[job], args)
    if door.startswith("enqueue_many"):
        assert str(info.value).startswith("call #0: ")
    assert raw_redis.keys("*") == []


async def test_a_waiting_job_cannot_be_updated_to_unstorable_arguments(
    registry: Registry, jobs: dict[str, JobHandler[Any, Any]]
) -> None:
    store = registry.connection().store
    handle = await jobs["count"].options(delay=60).enqueue(1)
    before = await store.jobs.record("default", handle.id)
    with pytest.raises(InvalidArguments, match=r"argument 'n' .* integer beyond 64 bits"):
        await handle.update(arguments=[2**70])
    with pytest.raises(InvalidArguments, match="argument 'value' holds NaN"):
        await (await jobs["keep"].options(delay=60).enqueue(1)).update(arguments=[math.nan])
    assert await store.jobs.record("default", handle.id) == before
    assert (await handle.info()).arguments == {"n": 1}


async def test_a_schedule_cannot_hold_unstorable_arguments(
    registry: Registry, jobs: dict[str, JobHandler[Any, Any]], raw_redis: redis.Redis
) -> None:
    with pytest.raises(InvalidArguments, match=r"argument 'n' .* integer beyond 64 bits"):
        await registry.add_schedule("big", "count", every=60, args=[2**70])
    with pytest.raises(InvalidArguments, match=r"argument 'text' .* not valid Unicode"):
        registry.schedule("odd", "say", every=60, args=["\ud800", []])
    assert raw_redis.keys("*") == []


async def test_nan_and_infinity_only_where_the_parameter_allows_them(
    registry: Registry, raw_redis: redis.Redis
) -> None:
    seen: list[float] = []

    @registry.job()
    def tolerant(x: Annotated[float, AllowInfNan()], scale: float = 1.0) -> None:
        seen.append(x)

    @registry.job()
    def loose(value: Any) -> None: ...

    with pytest.raises(InvalidArguments, match="scale: Input should be a finite number"):
        await tolerant.enqueue(1.0, math.inf)
    with pytest.raises(InvalidArguments, match="argument 'value' holds NaN or infinity"):
        await loose.enqueue({"v": -math.inf})  # it used to become None on the way
    assert raw_redis.keys("*") == []
    # a parameter typed to allow them keeps them as floats, through the worker
    handle = await tolerant.enqueue(math.inf)
    await run_jobs(registry)
    assert (await handle.info()).state == JobState.SUCCEEDED
    assert seen == [math.inf]
    # finite floats whose msgpack looks like a non-finite one pass
    big = await loose.enqueue([1.7e308, -1.7e308, 2.0**1010])
    assert (await big.info()).arguments == {"value": [1.7e308, -1.7e308, 2.0**1010]}


async def test_max_payload_is_a_setting_and_the_error_names_it(
    redis_url: str, tmp_path: Path, raw_redis: redis.Redis
) -> None:
    registry = Registry(redis_url, config_dir=tmp_path, environ={"JOBMASTER_MAX_PAYLOAD": "4096"})
    try:

        @registry.job()
        def upload(data: str) -> None: ...

        assert registry.settings.max_payload == 4096
        with pytest.raises(InvalidArguments) as info:
            await upload.enqueue("x" * 5000)
        message = str(info.value)
        assert "5,00" in message
        assert "limit of 4,096" in message
        assert "JOBMASTER_MAX_PAYLOAD" in message
        assert "reference" in message
        calls = [("small",)] * 300 + [("x" * 5000,)]
        with pytest.raises(InvalidArguments, match=r"call #300: .*JOBMASTER_MAX_PAYLOAD"):
            await upload.enqueue_many(calls)
        assert raw_redis.keys("*") == []
        handle = await upload.enqueue("x" * 4000)
        assert (await handle.info()).arguments == {"data": "x" * 4000}
    finally:
        await registry.aclose()
        registry.close()


async def test_annotated_constraints_are_checked_at_enqueue(
    registry: Registry, raw_redis: redis.Redis
) -> None:
    @registry.job()
    def resize(width: Annotated[int, Field(gt=0, le=10_000)]) -> None: ...

    with pytest.raises(InvalidArguments, match="width: Input should be greater than 0"):
        await resize.enqueue(0)
    with pytest.raises(InvalidArguments, match=r"call #1: .*width: Input should be less than"):
        await resize.enqueue_many([(5,), (10_001,)])
    assert raw_redis.keys("*") == []


async def test_a_far_delay_is_refused_when_rescheduling(
    jobs: dict[str, JobHandler[Any, Any]],
) -> None:
    handle = await jobs["count"].options(delay=60).enqueue(1)
    before = (await handle.info()).scheduled_for
    with pytest.raises(InvalidArguments, match="delay= must be at most 315,360,000 seconds"):
        await handle.reschedule(delay=1e30)  # it used to overflow into "run now"
    job = await handle.info()
    assert job.state is JobState.SCHEDULED
    assert job.scheduled_for == before


def test_retry_delays_beyond_ten_years_are_refused() -> None:
    with pytest.raises(ValidationError, match="max_backoff"):
        Retry(max_backoff=1e30)
    with pytest.raises(ValidationError, match="max_backoff"):
        Retry(max_backoff=math.inf)
    for delay in (1e30, math.inf, math.nan, -1):
        with pytest.raises(ValueError, match="RetryLater delay must be from 0 to 315,360,000"):
            RetryLater(delay)
        with pytest.raises(ValueError, match="RateLimited retry_after must be from 0 to 315,360"):
            RateLimited(delay)
    assert RetryLater(86400).delay == 86400
    assert RateLimited(30).retry_after == 30
