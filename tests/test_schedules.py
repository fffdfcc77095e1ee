"""Schedules: validation, tick computation (croniter, DST), catch-up planning, the run-time
API, syncing code-declared schedules, and the scheduler loop in-process on a real Redis."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jobmaster import (
    ConfigError,
    InvalidArguments,
    JobState,
    Registry,
    ScheduleExists,
    ScheduleNotFound,
    UnknownJob,
)
from jobmaster.cron import (
    MAX_TICKS_PER_FIRE,
    CronRule,
    IntervalRule,
    check_cron,
    check_interval,
    check_timezone,
    plan_ticks,
)
from jobmaster.keys import Keys
from jobmaster.models import JobSummary
from jobmaster.scheduler import Scheduler
from jobmaster.store import ScheduleFiring, TickJob
from jobmaster.testing import run_jobs
from jobmaster.transport.clients import async_client
from jobmaster.worker import Worker
from tests.conftest import run_cli, wait_until

pytestmark = pytest.mark.deployments


NO_GAP = (0, 0)


def ms(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def iso(value: int) -> str:
    return datetime.fromtimestamp(value / 1000, UTC).isoformat()


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "has 4 field"),
        ("0 0 * * * * 2030", "has 7 field"),
        ("61 * * * *", "invalid cron expression"),
        ("a b c d e", "invalid cron expression"),
        ("0 0 31 2 *", "invalid cron expression"),  # never ticks
        ("H * * * *", "invalid cron expression"),
        ("@reboot", "invalid cron expression"),
    ],
)
def test_bad_cron_expressions_are_config_errors(expression: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_cron(expression)


@pytest.mark.parametrize("expression", ["0 3 * * *", "*/5 * * * * 30", "@daily", "0 0 L * *"])
def test_good_cron_expressions_pass(expression: str) -> None:
    assert check_cron(expression) == expression


def test_unknown_timezone_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown timezone 'Mars/Olympus'.*IANA"):
        check_timezone("Mars/Olympus")
    assert check_timezone("Europe/Berlin") == "Europe/Berlin"


@pytest.mark.parametrize("every", [0, -1, 0.5, float("nan"), float("inf"), True, "60"])
def test_bad_intervals_are_config_errors(every: Any) -> None:
    with pytest.raises(ConfigError, match="every= must be a number of seconds >= 1"):
        check_interval(every)


def test_intervals_take_seconds_or_timedeltas() -> None:
    assert check_interval(90) == 90.0
    assert check_interval(timedelta(minutes=5)) == 300.0


# -- tick computation ----------------------------------------------------------------------------


def test_cron_ticks_are_strictly_after_and_before() -> None:
    rule = CronRule("* * * * * *", "UTC")  # every second (croniter: seconds last)
    t = ms("2026-01-01T12:00:00+00:00")
    assert rule.next_after(t) == t + 1000
    assert rule.next_after(t + 500) == t + 1000
    assert rule.prev_before(t) == t - 1000
    assert rule.prev_before(t + 1) == t


def test_daily_cron_keeps_local_time_across_dst() -> None:
    rule = CronRule("0 3 * * *", "America/New_York")
    t = ms("2026-03-07T00:00:00-05:00")
    ticks = [t := rule.next_after(t) for _ in range(3)]
    # 03:00 local every day: 08:00 UTC before the spring change, 07:00 UTC after it.
    assert [iso(x) for x in ticks] == [
        "2026-03-07T08:00:00+00:00",
        "2026-03-08T07:00:00+00:00",
        "2026-03-09T07:00:00+00:00",
    ]
    t = ms("2026-10-31T00:00:00-04:00")
    ticks = [t := rule.next_after(t) for _ in range(3)]
    assert [iso(x) for x in ticks] == [
        "2026-10-31T07:00:00+00:00",
        "2026-11-01T08:00:00+00:00",
        "2026-11-02T08:00:00+00:00",
    ]


def test_dst_gaps_and_folds_are_as_croniter_handles_them() -> None:
    # 02:30 does not exist on 2026-03-08 in New York: croniter fires at 03:00 EDT instead.
    spring = CronRule("30 2 * * *", "America/New_York")
    assert iso(spring.next_after(ms("2026-03-08T00:00:00-05:00"))) == "2026-03-08T07:00:00+00:00"
    # 01:30 happens twice on 2026-11-01: croniter fires at both.
    fall = CronRule("30 1 * * *", "America/New_York")
    first = fall.next_after(ms("2026-11-01T00:00:00-04:00"))
    second = fall.next_after(first)
    assert (iso(first), iso(second)) == (
        "2026-11-01T05:30:00+00:00",
        "2026-11-01T06:30:00+00:00",
    )


def test_interval_ticks_fall_on_multiples_since_the_epoch() -> None:
    rule = IntervalRule(60_000)
    t = ms("2026-01-01T12:00:30+00:00")
    assert iso(rule.next_after(t)) == "2026-01-01T12:01:00+00:00"
    assert iso(rule.prev_before(t)) == "2026-01-01T12:00:00+00:00"
    assert rule.next_after(rule.prev_before(t)) == rule.next_after(t - 30_000)


# -- catch-up planning ---------------------------------------------------------------------------

SECOND = IntervalRule(1000)


def test_late_ticks_outside_a_gap_all_fire() -> None:
    plan = plan_ticks(SECOND, 10_000, 14_500, NO_GAP, "skip", 100)
    assert plan.ticks == [10_000, 11_000, 12_000, 13_000, 14_000]
    assert plan.next_due == 15_000


@pytest.mark.parametrize(
    ("policy", "limit", "missed"),
    [
        ("skip", 100, []),
        ("latest", 100, [19_000]),
        ("all", 3, [17_000, 18_000, 19_000]),
        ("all", 100, [13_000, 14_000, 15_000, 16_000, 17_000, 18_000, 19_000]),
    ],
)
def test_ticks_inside_a_gap_follow_the_policy(policy: Any, limit: int, missed: list[int]) -> None:
    # A scheduler was last seen at 12.5 s; the next one arrived at 19.5 s; it is now 21.2 s.
    plan = plan_ticks(SECOND, 11_000, 21_200, (12_500, 19_500), policy, limit)
    assert plan.ticks == [11_000, 12_000, *missed, 20_000, 21_000]
    assert plan.next_due == 22_000


def test_a_gap_that_ends_in_the_future_keeps_the_rest_for_later() -> None:
    plan = plan_ticks(SECOND, 11_000, 15_200, (10_500, 30_000), "latest", 100)
    assert plan.ticks == [15_000]
    assert plan.next_due == 16_000


def test_a_long_backlog_is_fired_in_bounded_batches() -> None:
    plan = plan_ticks(SECOND, 0, 1_000_000, NO_GAP, "all", 5)
    assert len(plan.ticks) == MAX_TICKS_PER_FIRE
    assert plan.next_due == MAX_TICKS_PER_FIRE * 1000  # the next call goes on from there


def test_a_month_long_gap_costs_no_more_than_the_ticks_kept() -> None:
    rule = CronRule("* * * * * *", "Europe/Berlin")
    start = ms("2026-01-01T00:00:00+00:00")
    month = 31 * 86_400_000
    began = time.monotonic()
    plan = plan_ticks(rule, start, start + month + 2500, (start - 1, start + month), "all", 3)
    assert time.monotonic() - began < 1
    assert plan.ticks == [
        start + month - 3000,
        start + month - 2000,
        start + month - 1000,
        start + month,
        start + month + 1000,
        start + month + 2000,
    ]


# -- declaring schedules -------------------------------------------------------------------------


@pytest.fixture
def app(registry: Registry) -> Registry:
    @registry.job()
    async def report(kind: str, days: int = 1) -> str:
        return f"{kind}/{days}"

    @registry.job()
    async def cleanup() -> str:
        return "clean"

    @registry.job(queue="other")
    async def elsewhere(kind: str) -> str:
        return kind

    return registry


def test_declaring_validates_everything(app: Registry) -> None:
    with pytest.raises(UnknownJob, match="no job named 'nope'"):
        app.schedule("s", "nope", cron="0 3 * * *")
    with pytest.raises(InvalidArguments, match="kind"):
        app.schedule("s", "report", cron="0 3 * * *")
    with pytest.raises(InvalidArguments, match="days"):
        app.schedule("s", "report", cron="0 3 * * *", args={"kind": "x", "days": "many"})
    with pytest.raises(ConfigError, match="give cron= or every="):
        app.schedule("s", "cleanup")
    with pytest.raises(ConfigError, match="give cron= or every="):
        app.schedule("s", "cleanup", cron="0 3 * * *", every=60)
    with pytest.raises(ConfigError, match="schedule name"):
        app.schedule("s@1", "cleanup", every=60)
    with pytest.raises(ConfigError, match="catch_up must be one of skip, latest, all"):
        app.schedule("s", "cleanup", every=60, catch_up="some")
    with pytest.raises(ConfigError, match="catch_up_limit must be from 1 to 1000"):
        app.schedule("s", "cleanup", every=60, catch_up="all", catch_up_limit=0)
    with pytest.raises(ConfigError, match="unknown timezone"):
        app.schedule("s", "cleanup", cron="0 3 * * *", tz="Nowhere/Land")
    assert app.declared_schedules == {}

    definition = app.schedule("s", "report", cron="0 3 * * *", args=["daily"], tz="Asia/Tokyo")
    assert (definition.job, definition.queue, definition.args) == (
        "report",
        "default",
        {"kind": "daily", "days": 1},
    )
    with pytest.raises(ConfigError, match="already declared"):
        app.schedule("s", "cleanup", every=60)


def test_cron_option_of_the_decorator(registry: Registry) -> None:
    @registry.job(cron="0 3 * * *")
    async def nightly(dry_run: bool = False) -> None:
        return None

    assert registry.declared_schedules["nightly"].cron == "0 3 * * *"
    assert registry.declared_schedules["nightly"].source == "code"

    with pytest.raises(ConfigError, match="cron= is for jobs without required arguments"):

        @registry.job(cron="0 3 * * *")
        async def needs(kind: str) -> None:
            return None

    with pytest.raises(ConfigError, match="invalid cron expression"):

        @registry.job(cron="0 25 * * *")
        async def bad_hour() -> None:
            return None

    with pytest.raises(ConfigError, match=r"valid options: .*cron"):
        registry.job(crontab="* * * * *")


# -- the run-time API ----------------------------------------------------------------------------


async def test_add_list_and_get(app: Registry) -> None:
    before = datetime.now(UTC)
    added = await app.add_schedule("nightly", "report", cron="0 3 * * *", args={"kind": "n"})
    assert added.source == "api"
    assert added.args == {"kind": "n", "days": 1}
    assert added.next_run_at is not None
    assert added.next_run_at > before
    assert (added.next_run_at.hour, added.next_run_at.minute) == (3, 0)
    assert added.next_run_at - before <= timedelta(days=1)
    await app.add_schedule("often", "elsewhere", every=60, args=["x"], catch_up="skip")

    listed = await app.schedules()
    assert [(s.name, s.queue) for s in listed] == [("nightly", "default"), ("often", "other")]
    assert listed[1].catch_up == "skip"
    assert (await app.get_schedule("often")).every == 60
    assert "other" in await app.known_queues()

    with pytest.raises(ScheduleExists):
        await app.add_schedule("often", "cleanup", every=60)
    with pytest.raises(ScheduleNotFound, match="no schedule named 'missing'"):
        await app.get_schedule("missing")


@pytest.mark.parametrize(
    "operation",
    ["pause_schedule", "resume_schedule", "trigger_schedule", "delete_schedule"],
)
async def test_operations_on_a_missing_schedule(app: Registry, operation: str) -> None:
    with pytest.raises(ScheduleNotFound):
        await getattr(app, operation)("missing")


async def test_update_keeps_the_next_tick_unless_the_timing_changes(app: Registry) -> None:
    added = await app.add_schedule("s", "report", cron="0 3 * * *", args={"kind": "a"})
    changed = await app.update_schedule("s", args={"kind": "b", "days": 7}, catch_up="all")
    assert changed.args == {"kind": "b", "days": 7}
    assert changed.catch_up == "all"
    assert changed.next_run_at == added.next_run_at

    hourly = await app.update_schedule("s", cron="0 * * * *")
    assert hourly.cron == "0 * * * *"
    assert hourly.next_run_at is not None
    assert hourly.next_run_at - datetime.now(UTC) <= timedelta(hours=1)

    every = await app.update_schedule("s", every=30)
    assert (every.cron, every.every) == (None, 30)

    with pytest.raises(InvalidArguments):
        await app.update_schedule("s", args={"kind": 5, "days": "x"})
    with pytest.raises(ConfigError, match="delete the schedule and add it again"):
        await app.update_schedule("s", job="elsewhere")
    with pytest.raises(InvalidArguments):  # the current arguments do not fit the new job
        await app.update_schedule("s", job="cleanup")
    moved = await app.update_schedule("s", job="cleanup", args={})
    assert (moved.job, moved.args) == ("cleanup", {})
    assert (await app.get_schedule("s")).every == 30


async def test_pause_and_resume(app: Registry) -> None:
    await app.add_schedule("s", "cleanup", every=3600)
    paused = await app.pause_schedule("s")
    assert paused.paused
    assert paused.next_run_at is None
    assert (await app.pause_schedule("s")).paused  # idempotent
    updated = await app.update_schedule("s", every=60)
    assert updated.paused  # stays paused
    resumed = await app.resume_schedule("s")
    assert not resumed.paused
    assert resumed.next_run_at is not None
    assert timedelta(0) < resumed.next_run_at - datetime.now(UTC) <= timedelta(seconds=60)
    assert (await app.resume_schedule("s")) == resumed


async def test_trigger_runs_the_job_now_without_moving_the_next_tick(app: Registry) -> None:
    added = await app.add_schedule("s", "report", every=3600, args={"kind": "now"})
    handle = await app.trigger_schedule("s")
    assert handle.id.startswith("s@run-")
    after = await app.get_schedule("s")
    assert after.next_run_at == added.next_run_at
    assert after.last_job_id == handle.id
    assert after.last_job_state is JobState.QUEUED
    await run_jobs(app)
    assert await handle.result(timeout=5) == "now/1"
    assert (await app.get_schedule("s")).last_job_state is JobState.SUCCEEDED


async def test_delete_leaves_the_jobs_alone(app: Registry) -> None:
    await app.add_schedule("s", "cleanup", every=3600)
    handle = await app.trigger_schedule("s")
    await app.delete_schedule("s")
    assert await app.schedules() == []
    assert (await handle.info()).state is JobState.QUEUED
    with pytest.raises(ScheduleNotFound):
        await app.delete_schedule("s")
    await app.add_schedule("s", "cleanup", every=60)  # the name is free again


# -- the scheduler loop --------------------------------------------------------------------------


async def tick_jobs(registry: Registry, name: str, queue: str = "default") -> dict[int, JobSummary]:
    """The jobs a schedule's ticks created, by tick (ms). A tick's job id is
    ``<schedule>@<tick ms>``, so there is at most one per tick (a job that changes state
    while the indexes are read may be listed twice: the later listing wins)."""
    jobs: dict[int, JobSummary] = {}
    for state in JobState:
        if state is JobState.BLOCKED:
            continue
        for job in await registry.list_jobs(queue, state, limit=10_000):
            prefix, _, tick = job.id.partition("@")
            if prefix == name and tick.isdigit():
                jobs[int(tick)] = job
    return jobs


def contiguous(ticks: list[int], step: int = 1000) -> bool:
    return all(b - a == step for a, b in itertools.pairwise(ticks))


class RunningWorker:
    def __init__(self, registry: Registry) -> None:
        self.worker = Worker(registry, install_signal_handlers=False, echo_job_logs=False)
        self.task = asyncio.create_task(self.worker.run())

    async def stop(self) -> None:
        self.worker.stop()
        await asyncio.wait_for(self.task, 15)


@pytest.fixture
async def workers() -> AsyncIterator[Callable[[Registry], RunningWorker]]:
    started: list[RunningWorker] = []

    def start(registry: Registry) -> RunningWorker:
        started.append(RunningWorker(registry))
        return started[-1]

    yield start
    for running in started:
        if not running.task.done():
            await running.stop()


LeaseRegistry = Callable[[float], Registry]


@pytest.fixture
async def lease_registry(redis_url: str, tmp_path: Path) -> AsyncIterator[LeaseRegistry]:
    """Registries whose schedulers hold their lease the given number of seconds."""
    made: list[Registry] = []

    def make(lease: float) -> Registry:
        registry = Registry(
            redis_url, config_dir=tmp_path, environ={"JOBMASTER_SCHEDULER_LEASE": str(lease)}
        )

        @registry.job()
        async def beat(label: str = "") -> str:
            return label

        made.append(registry)
        return registry

    yield make
    for registry in made:
        await registry.aclose()


async def test_a_worker_fires_code_declared_schedules_once_per_tick(
    app: Registry, workers: Callable[[Registry], RunningWorker]
) -> None:
    app.schedule("clean", "cleanup", every=1)
    workers(app)
    await wait_until(lambda: _count(tick_jobs(app, "clean"), 3), timeout=10)
    jobs = await tick_jobs(app, "clean")
    ticks = sorted(jobs)
    assert contiguous(ticks)
    assert all(t % 1000 == 0 for t in ticks)
    for tick, job in jobs.items():  # fired on time: created within moments of the tick
        lateness = job.created_at.timestamp() * 1000 - tick
        assert -5 <= lateness < 500, (tick, lateness)
    listed = await app.get_schedule("clean")
    assert listed.source == "code"
    assert listed.last_job_id is not None
    assert listed.last_job_id.startswith("clean@")


async def _count(jobs: Awaitable[dict[int, JobSummary]], n: int) -> bool:
    return len(await jobs) >= n


async def test_worker_start_syncs_code_declared_schedules(
    redis_url: str, tmp_path: Path, workers: Callable[[Registry], RunningWorker]
) -> None:
    def build(**schedules: dict[str, Any]) -> Registry:
        registry = Registry(redis_url, config_dir=tmp_path, environ={})

        @registry.job()
        async def cleanup(days: int = 1) -> int:
            return days

        for name, options in schedules.items():
            registry.schedule(name, cleanup, **options)
        return registry

    first = build(a={"cron": "0 3 * * *"}, b={"cron": "0 4 * * *"})
    await first.add_schedule("adhoc", "cleanup", every=3600)
    running = workers(first)
    await wait_until(lambda: _names(first, ["a", "adhoc", "b"]), timeout=10)
    await running.stop()
    await first.pause_schedule("a")

    # The next deploy changes a's arguments, drops b and adds c.
    second = build(a={"cron": "0 3 * * *", "args": {"days": 9}}, c={"every": 60})
    running = workers(second)
    await wait_until(lambda: _names(second, ["a", "adhoc", "c"]), timeout=10)
    await running.stop()
    after = {s.name: s for s in await second.schedules()}
    assert sorted(after) == ["a", "adhoc", "c"]  # run-time schedules are left alone
    assert after["a"].args == {"days": 9}
    assert after["a"].paused  # the state survives a definition change
    assert after["c"].source == "code"
    await first.aclose()
    await second.aclose()


async def _names(registry: Registry, expected: list[str]) -> bool:
    return [s.name for s in await registry.schedules()] == expected


async def test_racing_schedulers_cannot_fire_a_tick_twice(lease_registry: LeaseRegistry) -> None:
    """Without any lease: many schedulers fire the same due schedule at once."""
    registry = lease_registry(5)
    await registry.add_schedule("race", "beat", every=1)
    stores = [registry.new_store() for _ in range(8)]
    schedulers = [
        Scheduler(registry, store, ["default"], f"holder-{i}", sync=False)
        for i, store in enumerate(stores)
    ]
    for _ in range(3):
        lease = await stores[0].schedules.scheduler_lease("default", "probe", 60_000)
        await asyncio.sleep(lease.next_due_ms / 1000 + 0.01)
        lease = await stores[0].schedules.scheduler_lease("default", "probe", 60_000)
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(s._fire_due("default", lease, loop.time()) for s in schedulers))
    jobs = await tick_jobs(registry, "race")
    assert len(jobs) == 3
    assert contiguous(sorted(jobs))
    assert sum(s.jobs_created for s in schedulers) == 3

    # A stale firing (read before another scheduler fired) writes nothing.
    state = (await stores[0].schedules.schedules("default", ["race"]))[0]
    stale = ScheduleFiring("race", 1, 0, 99, 0, [TickJob("race@5", b"x", 5)])
    assert (await stores[0].schedules.fire_schedules("default", [stale]))[0] == [(0, 0)]
    assert (await stores[0].schedules.schedules("default", ["race"]))[0] == state
    for store in stores:
        await store.close()


async def test_one_leader_and_a_prompt_handover(
    redis_url: str, lease_registry: LeaseRegistry
) -> None:
    registry = lease_registry(1.0)
    store = registry.new_store()
    a = Scheduler(registry, store, ["default"], "a", sync=False)
    b = Scheduler(registry, store, ["default"], "b", sync=False)
    task_a = asyncio.create_task(a.run())
    await wait_until(lambda: store.schedules.scheduler_leader("default"), timeout=5)
    task_b = asyncio.create_task(b.run())
    await asyncio.sleep(0.5)
    assert await store.schedules.scheduler_leader("default") == "a"

    task_a.cancel()  # a clean stop releases the lease: b takes over within its check interval
    await asyncio.gather(task_a, return_exceptions=True)
    started = time.monotonic()
    await wait_until(lambda: _leader_is(store, "b"), timeout=5)
    assert time.monotonic() - started < 1.0

    b._release = _no_release  # type: ignore[method-assign]  # b dies without a word
    task_b.cancel()
    await asyncio.gather(task_b, return_exceptions=True)
    c = Scheduler(registry, store, ["default"], "c", sync=False)
    task_c = asyncio.create_task(c.run())
    started = time.monotonic()
    await wait_until(lambda: _leader_is(store, "c"), timeout=5)
    assert 0.3 < time.monotonic() - started < 2.0  # once b's lease expired
    gap = await _gap(redis_url)
    assert gap == (0, gap[1])  # only the very first start counted as a gap: handovers don't
    task_c.cancel()
    await asyncio.gather(task_c, return_exceptions=True)
    await store.close()


async def _no_release() -> None:
    return None


async def _leader_is(store: Any, holder: str) -> bool:
    return bool(await store.schedules.scheduler_leader("default") == holder)


async def _gap(redis_url: str, queue: str = "default") -> tuple[int, int]:
    client = async_client(redis_url)
    raw = await client.hmget(Keys().queue(queue).scheduler, ["gap_from", "gap_to"])
    await client.aclose()
    return int(raw[0] or 0), int(raw[1] or 0)


async def test_catch_up_policies_after_every_scheduler_stopped(
    redis_url: str, lease_registry: LeaseRegistry, workers: Callable[[Registry], RunningWorker]
) -> None:
    registry = lease_registry(0.3)
    policies: dict[str, dict[str, Any]] = {
        "skip": {"catch_up": "skip"},
        "latest": {"catch_up": "latest"},
        "all2": {"catch_up": "all", "catch_up_limit": 2},
        "all": {"catch_up": "all"},
    }
    for name, options in policies.items():
        await registry.add_schedule(name, "beat", every=1, **options)
    first = workers(registry)
    await wait_until(lambda: _count(tick_jobs(registry, "skip"), 2), timeout=10)
    await first.stop()
    await asyncio.sleep(3.6)  # nothing runs: about four ticks fall due
    second = workers(registry)
    until = (time.time() + 2) * 1000
    await wait_until(lambda: _tick_after(registry, "skip", until), timeout=10)
    await second.stop()

    gap_from, gap_to = await _gap(redis_url)
    assert gap_to - gap_from > 3000
    in_gap = [t for t in range(gap_from // 1000 * 1000, gap_to + 1, 1000) if gap_from < t < gap_to]
    assert len(in_gap) >= 3
    expected = {"skip": [], "latest": in_gap[-1:], "all2": in_gap[-2:], "all": in_gap}
    for name, missed in expected.items():
        ticks = sorted(await tick_jobs(registry, name))
        assert [t for t in ticks if gap_from < t < gap_to] == missed, name
        assert contiguous([t for t in ticks if t <= gap_from]), name
        assert contiguous([t for t in ticks if t >= gap_to]), name
        assert min(t for t in ticks if t >= gap_to) - gap_to <= 1000  # none missed after
        assert gap_from - max(t for t in ticks if t <= gap_from) <= 1000  # none before


async def _tick_after(registry: Registry, name: str, ms: float) -> bool:
    return any(tick > ms for tick in await tick_jobs(registry, name))


async def test_a_schedule_added_at_run_time_wakes_the_leader(
    lease_registry: LeaseRegistry, workers: Callable[[Registry], RunningWorker]
) -> None:
    """The leader sleeps up to a third of its (here long) lease; a new schedule wakes it."""
    registry = lease_registry(60)
    workers(registry)
    store = registry.connection().store
    await wait_until(lambda: store.schedules.scheduler_leader("default"), timeout=5)
    await asyncio.sleep(0.3)
    await registry.add_schedule("new", "beat", cron="* * * * * *")
    jobs = await wait_until(lambda: tick_jobs(registry, "new"), timeout=5)
    tick, job = next(iter(jobs.items()))
    assert job.created_at.timestamp() * 1000 - tick < 500


# -- the command line ----------------------------------------------------------------------------


def test_schedules_commands(redis_url: str) -> None:
    app = "apps.procapp:registry"
    added = run_cli(
        redis_url, "schedules", "add", "report", "--app", app, "--job", "add",
        "--cron", "0 3 * * *", "--tz", "Europe/Paris", "--args", '{"a": 1, "b": 2}',
        "--catch-up", "all", "--catch-up-limit", "5",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "cron 0 3 * * * (Europe/Paris)" in added.stdout
    assert "all (<= 5)" in added.stdout
    every = run_cli(redis_url, "schedules", "add", "tick", "--app", app, "--job", "beat",
                      "--every", "90")  # fmt: skip
    assert every.returncode == 0, every.stderr

    listed = run_cli(redis_url, "schedules", "list")
    assert listed.returncode == 0, listed.stderr
    assert "report" in listed.stdout
    assert "every 90s" in listed.stdout
    assert listed.stdout.index("report") < listed.stdout.index("tick")

    paused = run_cli(redis_url, "schedules", "pause", "tick")
    assert paused.returncode == 0, paused.stderr
    assert "paused" in paused.stdout
    resumed = run_cli(redis_url, "schedules", "resume", "tick")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed" in resumed.stdout

    triggered = run_cli(redis_url, "schedules", "trigger", "report")
    assert triggered.returncode == 0, triggered.stderr
    job_id = triggered.stdout.strip()
    assert job_id.startswith("report@run-")
    assert job_id in run_cli(redis_url, "schedules", "list").stdout

    deleted = run_cli(redis_url, "schedules", "delete", "report")
    assert deleted.returncode == 0, deleted.stderr
    assert "report" not in run_cli(redis_url, "schedules", "list").stdout


def test_schedules_command_errors(redis_url: str) -> None:
    app = "apps.procapp:registry"
    missing = run_cli(redis_url, "schedules", "pause", "nope")
    assert missing.returncode == 1
    assert "no schedule named 'nope'" in missing.stderr
    bad = run_cli(redis_url, "schedules", "add", "x", "--app", app, "--job", "add",
                    "--cron", "0 3 * *", "--args", "[1, 2]")  # fmt: skip
    assert bad.returncode == 1
    assert "has 4 field" in bad.stderr
    both = run_cli(redis_url, "schedules", "add", "x", "--app", app, "--job", "add",
                     "--cron", "0 3 * * *", "--every", "5")  # fmt: skip
    assert both.returncode == 2
    bad_args = run_cli(redis_url, "schedules", "add", "x", "--app", app, "--job", "add",
                         "--every", "5", "--args", '{"a": "one"}')  # fmt: skip
    assert bad_args.returncode == 1
    assert "invalid arguments" in bad_args.stderr
