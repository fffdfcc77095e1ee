"""Enqueueing against a real Redis: validation, bulk batches, options and deduplication."""

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from pydantic import BaseModel

from jobmaster import (
    Context,
    InvalidArguments,
    JobHandle,
    JobHandler,
    JobmasterError,
    JobState,
    Registry,
    UnknownJob,
)
from jobmaster.codec import pack, unpack
from jobmaster.records import RecordPacker, job_record
from jobmaster.testing import run_jobs


class Point(BaseModel):
    x: int
    y: int


def snapshot(raw: redis.Redis) -> dict[bytes, Any]:
    """Everything in Redis, to check that a call wrote nothing."""
    return {key: (raw.type(key), raw.dump(key)) for key in sorted(raw.keys("*"))}


def assert_nothing_written(raw: redis.Redis) -> None:
    assert raw.keys("*") == []


async def succeeded_result(handle: JobHandle[Any]) -> Any:
    """The stored result of a job that must have succeeded (read from its record)."""
    job = await handle.info()
    assert job.state == JobState.SUCCEEDED, job
    return job.result


def define_add(registry: Registry) -> JobHandler[[int, int], int]:
    @registry.job()
    async def add(a: int, b: int) -> int:
        return a + b

    return add


@pytest.fixture
def add(registry: Registry) -> JobHandler[[int, int], int]:
    return define_add(registry)


# -- the ways to enqueue ----------------------------------------------------------------------


async def test_enqueue_from_async_code(registry: Registry, add: JobHandler[Any, Any]) -> None:
    handle = await add.enqueue(1, b=2)
    assert handle.created
    assert handle.queue == "default"
    assert len(handle.id) >= 16
    assert await handle.state() == JobState.QUEUED
    job = await handle.info()
    assert job.id == handle.id
    assert job.name == "add"
    assert job.queue == "default"
    assert job.state == JobState.QUEUED
    assert job.arguments == {"a": 1, "b": 2}
    assert job.priority == 0
    assert job.attempts == []
    assert job.scheduled_for is None
    assert abs((job.created_at - datetime.now(UTC)).total_seconds()) < 5
    await run_jobs(registry)
    assert await succeeded_result(handle) == 3


async def test_each_enqueue_is_a_new_job(add: JobHandler[Any, Any]) -> None:
    first = await add.enqueue(1, 2)
    second = await add.enqueue(1, 2)
    assert first.id != second.id
    assert second.created


def test_enqueue_from_sync_code(registry: Registry, raw_redis: redis.Redis) -> None:
    @registry.job()
    def mul(a: int, b: int) -> int:
        return a * b

    handle = mul.enqueue_sync(3, 4)
    assert handle.created
    assert handle.state_sync() == JobState.QUEUED
    assert handle.info_sync().arguments == {"a": 3, "b": 4}

    delayed = mul.options(delay=60, priority=2).enqueue_sync(a=5, b=6)
    assert delayed.state_sync() == JobState.SCHEDULED
    assert delayed.info_sync().priority == 2

    many = mul.enqueue_many_sync([(1, 1), {"a": 2, "b": 2}])
    assert [h.info_sync().arguments for h in many] == [{"a": 1, "b": 1}, {"a": 2, "b": 2}]

    before = snapshot(raw_redis)
    with pytest.raises(InvalidArguments, match="mul"):
        mul.enqueue_sync("three", 4)
    assert snapshot(raw_redis) == before
    registry.close()


async def test_enqueue_many_with_tuples_and_dicts_across_chunks(
    registry: Registry, add: JobHandler[Any, Any], raw_redis: redis.Redis
) -> None:
    calls: list[Any] = [(i, 1) if i % 2 else {"a": i, "b": 2} for i in range(2500)]
    handles = await add.enqueue_many(calls)
    assert len(handles) == 2500
    assert all(h.created for h in handles)
    assert len({h.id for h in handles}) == 2500
    counts = await registry.count_jobs("default")
    assert counts[JobState.QUEUED] == 2500
    assert counts[JobState.SCHEDULED] == 0
    assert raw_redis.xlen("jobmaster:{default}:stream:0") == 2500
    # the handles are in call order, on both sides of each 1,000-job chunk
    for i in (0, 1, 998, 999, 1000, 1001, 1999, 2000, 2499):
        job = await handles[i].info()
        expected = {"a": i, "b": 1} if i % 2 else {"a": i, "b": 2}
        assert job.arguments == expected, i
        assert job.state == JobState.QUEUED


async def test_enqueue_many_accepts_a_generator(add: JobHandler[Any, Any]) -> None:
    handles = await add.enqueue_many((i, i) for i in range(3))
    assert [(await h.info()).arguments for h in handles] == [
        {"a": 0, "b": 0},
        {"a": 1, "b": 1},
        {"a": 2, "b": 2},
    ]


async def test_enqueue_many_with_options(registry: Registry, add: JobHandler[Any, Any]) -> None:
    handles = await add.options(queue="bulk", priority=4, delay=60).enqueue_many([(1, 2), (3, 4)])
    for handle in handles:
        job = await handle.info()
        assert (job.queue, job.priority, job.state) == ("bulk", 4, JobState.SCHEDULED)
    assert (await registry.count_jobs("bulk"))[JobState.SCHEDULED] == 2


async def test_enqueue_many_of_nothing_writes_nothing(
    registry: Registry, add: JobHandler[Any, Any], raw_redis: redis.Redis
) -> None:
    assert await add.enqueue_many([]) == []
    assert await registry.known_queues() == []
    assert_nothing_written(raw_redis)


async def test_enqueue_by_name_with_mapping_and_list(
    registry: Registry, add: JobHandler[Any, Any]
) -> None:
    by_mapping = await registry.enqueue("add", {"a": 1, "b": 2})
    by_list = await registry.enqueue("add", [3, 4])
    by_tuple = await registry.enqueue("add", (5, 6))
    assert (await by_mapping.info()).arguments == {"a": 1, "b": 2}
    assert (await by_list.info()).arguments == {"a": 3, "b": 4}
    assert (await by_tuple.info()).arguments == {"a": 5, "b": 6}
    await run_jobs(registry)
    assert await succeeded_result(by_mapping) == 3
    assert await succeeded_result(by_list) == 7


async def test_enqueue_by_name_with_options(registry: Registry, add: JobHandler[Any, Any]) -> None:
    handle = await registry.enqueue("add", [5, 6], queue="other", priority=9, job_id="named-1")
    assert (handle.id, handle.queue) == ("named-1", "other")
    job = await registry.get_job("named-1")
    assert (job.queue, job.priority, job.arguments) == ("other", 9, {"a": 5, "b": 6})


async def test_enqueue_by_name_of_a_job_without_parameters(registry: Registry) -> None:
    @registry.job()
    def tick() -> None: ...

    handle = await registry.enqueue("tick")
    assert (await handle.info()).arguments == {}


async def test_enqueue_by_name_with_bad_arguments_writes_nothing(
    registry: Registry, add: JobHandler[Any, Any], raw_redis: redis.Redis
) -> None:
    with pytest.raises(InvalidArguments, match="b"):
        await registry.enqueue("add", (5,))
    with pytest.raises(InvalidArguments, match=r"mapping .* or a list"):
        await registry.enqueue("add", "12")
    with pytest.raises(InvalidArguments, match=r"mapping .* or a list"):
        await registry.enqueue("add", 12)  # type: ignore[arg-type]
    with pytest.raises(InvalidArguments, match="unexpected argument 'c'"):
        await registry.enqueue("add", {"a": 1, "b": 2, "c": 3})
    assert_nothing_written(raw_redis)


async def test_enqueue_unknown_name_lists_registered_jobs(
    registry: Registry, add: JobHandler[Any, Any], raw_redis: redis.Redis
) -> None:
    @registry.job()
    def mul(a: int, b: int) -> int:
        return a * b

    with pytest.raises(UnknownJob) as info:
        await registry.enqueue("sub", {"a": 1, "b": 2})
    assert "'sub'" in str(info.value)
    assert "add, mul" in str(info.value)
    assert_nothing_written(raw_redis)


async def test_enqueue_unknown_name_on_an_empty_registry(registry: Registry) -> None:
    with pytest.raises(UnknownJob, match=r"\(none\)"):
        await registry.enqueue("add", {})


# -- invalid calls write nothing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        (("x", 2), {}, r"add\(\): invalid arguments: a: Input should be a valid integer.*'x'"),
        ((1, [2]), {}, r"b: Input should be a valid integer"),
        ((1,), {}, r"b: Field required"),
        ((), {}, r"a: Field required; b: Field required"),
        ((1, 2), {"c": 3}, r"unexpected argument 'c'; parameters: a, b"),
        ((1, 2, 3), {}, r"takes 2 positional argument\(s\) but 3 were given"),
        ((1,), {"a": 2}, r"multiple values for 'a'"),
    ],
)
async def test_invalid_call_raises_and_writes_nothing(
    add: JobHandler[Any, Any],
    raw_redis: redis.Redis,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    expected: str,
) -> None:
    with pytest.raises(InvalidArguments, match=expected) as info:
        await add.enqueue(*args, **kwargs)
    assert "p_" not in str(info.value)  # parameter names, not the model's field names
    assert_nothing_written(raw_redis)


async def test_invalid_call_via_options_writes_nothing(
    add: JobHandler[Any, Any], raw_redis: redis.Redis
) -> None:
    with pytest.raises(InvalidArguments, match="valid integer"):
        await add.options(job_id="x1", delay=5).enqueue("one", 2)
    assert_nothing_written(raw_redis)


async def test_context_is_not_an_argument_at_enqueue(
    registry: Registry, raw_redis: redis.Redis
) -> None:
    @registry.job()
    def resize(ctx: Context, path: str) -> str:
        return path

    with pytest.raises(InvalidArguments, match="unexpected argument 'ctx'"):
        await resize.enqueue(ctx=None, path="a.png")  # type: ignore[call-arg]
    with pytest.raises(InvalidArguments, match="takes 1 positional"):
        await resize.enqueue(None, "a.png")  # type: ignore[call-arg]
    assert_nothing_written(raw_redis)
    handle = await resize.enqueue("a.png")
    assert (await handle.info()).arguments == {"path": "a.png"}


async def test_one_bad_call_in_enqueue_many_writes_none(
    registry: Registry, add: JobHandler[Any, Any], raw_redis: redis.Redis
) -> None:
    calls: list[Any] = [(i, i) for i in range(2500)]
    calls[2400] = {"a": 1, "b": "two"}  # in the third chunk
    with pytest.raises(InvalidArguments) as info:
        await add.enqueue_many(calls)
    message = str(info.value)
    assert "call #2400" in message
    assert "b: Input should be a valid integer" in message
    assert "'two'" in message
    assert_nothing_written(raw_redis)


@pytest.mark.parametrize("bad_call", [5, "ab", b"ab", None])
async def test_enqueue_many_rejects_calls_that_are_not_tuples_or_dicts(
    add: JobHandler[Any, Any], raw_redis: redis.Redis, bad_call: Any
) -> None:
    with pytest.raises(InvalidArguments, match="tuples of positional arguments or dicts"):
        await add.enqueue_many([(1, 2), bad_call])
    assert_nothing_written(raw_redis)


async def test_enqueue_many_refuses_a_job_id(
    add: JobHandler[Any, Any], raw_redis: redis.Redis
) -> None:
    with pytest.raises(InvalidArguments, match="job_id"):
        await add.options(job_id="one").enqueue_many([(1, 2)])
    assert_nothing_written(raw_redis)


async def test_argument_that_cannot_be_encoded_raises_invalid_arguments(
    registry: Registry, raw_redis: redis.Redis
) -> None:
    @registry.job()
    def keep(value: Any) -> None: ...

    with pytest.raises(InvalidArguments, match="value"):
        await keep.enqueue(object())
    assert_nothing_written(raw_redis)


async def test_bytes_argument_round_trips_or_is_refused_cleanly(
    registry: Registry, raw_redis: redis.Redis
) -> None:
    seen: list[bytes] = []

    @registry.job()
    def store(data: bytes) -> None:
        seen.append(data)

    payload = b"\xff\x00\xfe"
    try:
        handle = await store.enqueue(payload)
    except InvalidArguments:
        assert_nothing_written(raw_redis)  # refused: fine, as long as nothing was written
    else:
        await run_jobs(registry)
        assert (await handle.info()).state == JobState.SUCCEEDED
        assert seen == [payload]


# -- pydantic models as parameters ------------------------------------------------------------


@pytest.fixture
def draw(registry: Registry) -> JobHandler[Any, Any]:
    @registry.job()
    def draw(p: Point, points: list[Point] | None = None) -> str:
        extra = sum(q.x + q.y for q in points or [])
        return f"{type(p).__name__}:{p.x + p.y + extra}"

    return draw


@pytest.mark.parametrize("point", [{"x": 1, "y": 2}, Point(x=1, y=2), {"x": "1", "y": 2}])
async def test_model_parameter_coerces_and_runs(
    registry: Registry, draw: JobHandler[Any, Any], point: Any
) -> None:
    handle = await draw.enqueue(point)
    assert (await handle.info()).arguments == {"p": {"x": 1, "y": 2}, "points": None}
    await run_jobs(registry)
    assert await succeeded_result(handle) == "Point:3"


async def test_list_of_models_parameter(registry: Registry, draw: JobHandler[Any, Any]) -> None:
    handle = await draw.enqueue({"x": 1, "y": 1}, points=[{"x": 2, "y": 3}, Point(x=4, y=5)])
    await run_jobs(registry)
    assert await succeeded_result(handle) == "Point:16"


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        (({"x": "one", "y": 2},), {}, r"p\.x: Input should be a valid integer.*'one'"),
        (({"x": 1},), {}, r"p\.y: Field required"),
        (("not a point",), {}, r"p: Input should be a valid dictionary or instance of Point"),
        (({"x": 1, "y": 2},), {"points": [{"x": 1, "y": "b"}]}, r"points\.0\.y: "),
    ],
)
async def test_model_parameter_with_bad_fields_is_rejected(
    draw: JobHandler[Any, Any],
    raw_redis: redis.Redis,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    expected: str,
) -> None:
    with pytest.raises(InvalidArguments, match=expected):
        await draw.enqueue(*args, **kwargs)
    assert_nothing_written(raw_redis)


# -- arguments as sent --------------------------------------------------------------------------


async def test_info_returns_the_arguments_as_sent(registry: Registry) -> None:
    @registry.job()
    def echo(
        text: str, ratio: float, items: list[int], meta: dict[str, Any], maybe: int | None = None
    ) -> None: ...

    meta = {"nested": {"list": [1, "two", None, True]}, "ünïcode": "✓"}
    handle = await echo.enqueue("héllo", 0.25, [1, 2, 3], meta)
    assert (await handle.info()).arguments == {
        "text": "héllo",
        "ratio": 0.25,
        "items": [1, 2, 3],
        "meta": meta,
        "maybe": None,
    }
    other = await echo.enqueue(text="", ratio=1.5, items=[], meta={}, maybe=7)
    assert (await other.info()).arguments == {
        "text": "",
        "ratio": 1.5,
        "items": [],
        "meta": {},
        "maybe": 7,
    }


# -- options ---------------------------------------------------------------------------------------


async def test_normal_job_is_queued(registry: Registry, add: JobHandler[Any, Any]) -> None:
    handle = await add.enqueue(1, 2)
    assert await handle.state() == JobState.QUEUED
    assert [j.id for j in await registry.list_jobs("default", JobState.QUEUED)] == [handle.id]
    assert await registry.list_jobs("default", JobState.SCHEDULED) == []


@pytest.mark.parametrize("delay", [10, 10.0, timedelta(seconds=10)])
async def test_delayed_job_is_scheduled(
    registry: Registry, add: JobHandler[Any, Any], raw_redis: redis.Redis, delay: Any
) -> None:
    before = datetime.now(UTC)
    handle = await add.options(delay=delay).enqueue(1, 2)
    job = await handle.info()
    assert job.state == JobState.SCHEDULED
    assert await handle.state() == JobState.SCHEDULED
    assert job.scheduled_for is not None
    due_in = (job.scheduled_for - before).total_seconds()
    assert 9 <= due_in <= 12
    counts = await registry.count_jobs("default")
    assert (counts[JobState.SCHEDULED], counts[JobState.QUEUED]) == (1, 0)
    assert [j.id for j in await registry.list_jobs("default", JobState.SCHEDULED)] == [handle.id]
    # not runnable yet: nothing in any priority stream
    assert sum(raw_redis.xlen(f"jobmaster:{{default}}:stream:{b}") for b in range(10)) == 0


async def test_zero_delay_is_queued(add: JobHandler[Any, Any]) -> None:
    handle = await add.options(delay=0).enqueue(1, 2)
    assert await handle.state() == JobState.QUEUED


async def test_at_schedules_for_that_time(add: JobHandler[Any, Any]) -> None:
    at = datetime.now(UTC) + timedelta(minutes=5)
    handle = await add.options(at=at).enqueue(1, 2)
    job = await handle.info()
    assert job.state == JobState.SCHEDULED
    assert job.scheduled_for is not None
    assert abs((job.scheduled_for - at).total_seconds()) < 1


async def test_at_in_another_timezone(add: JobHandler[Any, Any]) -> None:
    from datetime import timezone

    tz = timezone(timedelta(hours=-7))
    at = datetime.now(tz) + timedelta(minutes=5)
    job = await (await add.options(at=at).enqueue(1, 2)).info()
    assert job.scheduled_for is not None
    assert abs((job.scheduled_for - at).total_seconds()) < 1


async def test_at_in_the_past_is_queued(add: JobHandler[Any, Any]) -> None:
    handle = await add.options(at=datetime.now(UTC) - timedelta(hours=1)).enqueue(1, 2)
    assert await handle.state() == JobState.QUEUED


async def test_priority_option(registry: Registry) -> None:
    order: list[str] = []

    @registry.job(priority=3)
    async def record(tag: str) -> None:
        order.append(tag)

    low = await record.options(priority=0).enqueue("low")
    default = await record.enqueue("default")
    high = await record.options(priority=9).enqueue("high")
    assert [(await h.info()).priority for h in (low, default, high)] == [0, 3, 9]
    await run_jobs(registry, concurrency=1)
    assert order == ["high", "default", "low"]


async def test_job_id_option(registry: Registry, add: JobHandler[Any, Any]) -> None:
    handle = await add.options(job_id="invoice:2024/17@eu").enqueue(1, 2)
    assert handle.id == "invoice:2024/17@eu"
    assert handle.created
    job = await registry.get_job("invoice:2024/17@eu")
    assert job.arguments == {"a": 1, "b": 2}


async def test_queue_option(registry: Registry, add: JobHandler[Any, Any]) -> None:
    handle = await add.options(queue="urgent").enqueue(1, 2)
    assert handle.queue == "urgent"
    assert (await handle.info()).queue == "urgent"
    assert (await registry.get_job(handle.id)).queue == "urgent"
    assert await registry.known_queues() == ["urgent"]
    assert [j.id for j in await registry.list_jobs("urgent", JobState.QUEUED)] == [handle.id]
    assert await registry.list_jobs("default", JobState.QUEUED) == []
    await run_jobs(registry, queues=["urgent"])
    assert await succeeded_result(handle) == 3


async def test_options_do_not_collide_with_job_arguments(registry: Registry) -> None:
    @registry.job()
    def schedule(delay: int, priority: str, queue: str, job_id: str, at: str) -> None: ...

    handle = await schedule.options(delay=30, priority=1).enqueue(
        delay=5, priority="p", queue="q", job_id="j", at="a"
    )
    job = await handle.info()
    assert job.arguments == {"delay": 5, "priority": "p", "queue": "q", "job_id": "j", "at": "a"}
    assert (job.queue, job.priority, job.state) == ("default", 1, JobState.SCHEDULED)


# -- job_id deduplication -------------------------------------------------------------------


async def test_same_job_id_twice_writes_nothing_new(
    registry: Registry, add: JobHandler[Any, Any], raw_redis: redis.Redis
) -> None:
    first = await add.options(job_id="dedup-1").enqueue(1, 2)
    assert first.created
    before = snapshot(raw_redis)
    second = await add.options(job_id="dedup-1").enqueue(10, 20)
    assert second.created is False
    assert second.id == "dedup-1"
    assert second.queue == "default"
    assert snapshot(raw_redis) == before
    job = await second.info()
    assert job.arguments == {"a": 1, "b": 2}  # the first job's
    assert (await registry.count_jobs("default"))[JobState.QUEUED] == 1


async def test_same_job_id_with_other_options_writes_nothing_new(
    add: JobHandler[Any, Any], raw_redis: redis.Redis
) -> None:
    opts = add.options(job_id="dedup-2")
    assert (await opts.enqueue(1, 2)).created
    before = snapshot(raw_redis)
    again = await add.options(job_id="dedup-2", delay=60, priority=9).enqueue(1, 2)
    assert again.created is False
    assert await again.state() == JobState.QUEUED
    assert (await opts.enqueue(1, 2)).created is False
    assert snapshot(raw_redis) == before


async def test_same_job_id_by_name_is_deduplicated(
    registry: Registry, add: JobHandler[Any, Any]
) -> None:
    first = await registry.enqueue("add", [1, 2], job_id="by-name")
    second = await registry.enqueue("add", {"a": 3, "b": 4}, job_id="by-name")
    assert (first.created, second.created) == (True, False)


async def test_job_id_of_a_finished_job_is_not_run_again(
    registry: Registry, add: JobHandler[Any, Any]
) -> None:
    first = await add.options(job_id="once").enqueue(1, 2)
    await run_jobs(registry)
    again = await add.options(job_id="once").enqueue(5, 5)
    assert again.created is False
    assert await succeeded_result(again) == 3
    assert await run_jobs(registry) == 0
    assert len((await first.info()).attempts) == 1


async def test_job_ids_are_unique_per_queue_and_lookups_say_when_ambiguous(
    registry: Registry, add: JobHandler[Any, Any]
) -> None:
    first = await add.options(job_id="cross", queue="a").enqueue(1, 2)
    second = await add.options(job_id="cross", queue="b").enqueue(3, 4)
    assert first.created
    assert second.created  # documented: an id is unique within its queue
    assert (await first.info()).arguments == {"a": 1, "b": 2}
    assert (await second.info()).arguments == {"a": 3, "b": 4}
    with pytest.raises(JobmasterError, match="in queues a, b"):
        await registry.get_job("cross")
    assert (await registry.get_job("cross", queue="b")).arguments == {"a": 3, "b": 4}


# -- option errors -----------------------------------------------------------------------------


def option_id(value: Any) -> str:
    if isinstance(value, datetime):
        return "aware-datetime" if value.tzinfo else "naive-datetime"
    return repr(value)[:24]


BAD_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"priority": 10}, "priority= must be an integer from 0 to 9"),
    ({"priority": -1}, "priority= must be an integer from 0 to 9"),
    ({"priority": 1.5}, "priority="),
    ({"priority": "5"}, "priority="),
    ({"priority": True}, "priority="),
    ({"delay": -1}, "delay= must be a number of seconds >= 0"),
    ({"delay": -0.001}, "delay="),
    ({"delay": timedelta(seconds=-1)}, "delay="),
    ({"delay": "10"}, "delay="),
    ({"delay": math.nan}, "delay="),
    ({"delay": math.inf}, "delay="),
    ({"delay": 1e30}, "delay= must be at most 315,360,000 seconds"),
    ({"delay": 10 * 366 * 86400}, "delay= must be at most"),
    ({"delay": timedelta(days=36500)}, "delay= must be at most"),
    ({"at": datetime(3000, 1, 1, tzinfo=UTC)}, "at= must be at most 3650 days ahead"),
    ({"at": datetime.max.replace(tzinfo=UTC)}, "at= must be at most"),
    ({"at": datetime.now() + timedelta(hours=1)}, "timezone-aware"),
    ({"at": 1700000000}, "at= must be a datetime"),
    ({"delay": 5, "at": datetime.now(UTC)}, "not both"),
    ({"job_id": ""}, "job_id="),
    ({"job_id": "has space"}, "job_id="),
    ({"job_id": "x" * 201}, "job_id="),
    ({"job_id": "naïve"}, "job_id="),
    ({"job_id": "a{b}"}, "job_id="),
    ({"job_id": "line\n"}, "job_id="),
    ({"job_id": 123}, "job_id="),
    ({"job_id": "invalid-1700000000000-0"}, "job_id= must not start with 'invalid-'"),
    ({"job_id": "invalid-mine"}, "reserved"),
    ({"queue": ""}, "queue="),
    ({"queue": "has space"}, "queue="),
    ({"queue": "{tag}"}, "queue="),
    ({"queue": "q" * 65}, "queue="),
    ({"queue": "urgent\n"}, "queue="),
    ({"queue": 7}, "queue="),
]


@pytest.mark.parametrize(
    ("options", "expected"),
    BAD_OPTIONS,
    ids=[",".join(f"{k}={option_id(v)}" for k, v in o.items()) for o, _ in BAD_OPTIONS],
)
async def test_bad_options_raise_invalid_arguments_and_write_nothing(
    add: JobHandler[Any, Any],
    raw_redis: redis.Redis,
    options: dict[str, Any],
    expected: str,
) -> None:
    with pytest.raises(InvalidArguments, match=expected):
        await add.options(**options).enqueue(1, 2)
    with pytest.raises(InvalidArguments, match=expected):
        await add.options(**options).enqueue_many([(1, 2)])
    assert_nothing_written(raw_redis)


@pytest.mark.parametrize(
    "call",
    [
        lambda r: r.enqueue("add", [1, 2], priority=12),
        lambda r: r.enqueue("add", [1, 2], delay=-5),
        lambda r: r.enqueue("add", [1, 2], queue="no way"),
    ],
)
async def test_bad_options_by_name_raise_invalid_arguments(
    registry: Registry,
    add: JobHandler[Any, Any],
    raw_redis: redis.Redis,
    call: Callable[[Registry], Any],
) -> None:
    with pytest.raises(InvalidArguments):
        await call(registry)
    assert_nothing_written(raw_redis)


async def test_unknown_option_is_a_type_error(add: JobHandler[Any, Any]) -> None:
    with pytest.raises(TypeError, match="countdown"):
        add.options(countdown=5)  # type: ignore[call-arg]


@pytest.mark.parametrize("size", [0, 255, 256, 65_535, 65_536])
@pytest.mark.parametrize("tags", [(), ("a", "b-c")])
def test_records_of_a_batch_are_packed_as_single_records_are(
    size: int, tags: tuple[str, ...]
) -> None:
    arguments = b"\x81" * size
    records = RecordPacker("reports.build", 7, tags).records(1_763_900_000_123, [arguments, b""])
    assert records == [
        pack(job_record("reports.build", value, 7, 1_763_900_000_123, tags))
        for value in (arguments, b"")
    ]
    assert unpack(records[0])["a"] == arguments


def test_a_value_that_cannot_be_packed_leaves_the_next_one_whole() -> None:
    # one packer serves a thread's values in turn: a failure must not leave bytes behind
    for unpackable in ({"n": [1, 2**70]}, {"n": [1, object()]}):
        with pytest.raises((OverflowError, TypeError)):
            pack(unpackable)
        assert unpack(pack({"b": [1, "x"]})) == {"b": [1, "x"]}
