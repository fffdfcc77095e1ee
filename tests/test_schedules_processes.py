"""Schedules fired by real `jobmaster worker` processes, on a real Redis, on the wall clock.

These tests are about ticks of the clock, so they wait for them (seconds, not sleeps-and-
hope): every tick in the window must have exactly one job, and none outside it.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import statistics
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis

from jobmaster import AttemptOutcome, JobState, Registry
from jobmaster.keys import Keys
from jobmaster.models import JobSummary
from tests.conftest import start_worker, wait_until

APP = "apps.procapp:registry"
Start = Callable[..., subprocess.Popen[str]]


@pytest.fixture
async def app(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Registry]:
    """The test application's registry, as the worker processes import it."""
    monkeypatch.setenv("JOBMASTER_REDIS_URL", redis_url)
    from tests.apps import procapp

    yield procapp.registry
    await procapp.registry.aclose()


@pytest.fixture
def workers(redis_url: str) -> Iterator[Start]:
    """Starts worker processes; kills whatever is left at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        started.append(start_worker(APP, redis_url, *args, env=env))
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def stop(processes: list[subprocess.Popen[str]]) -> None:
    """SIGTERM every process, then expect each to exit 0."""
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        out, _ = process.communicate(timeout=30)
        assert process.returncode == 0, out


async def live_workers(app: Registry, n: int) -> bool:
    return len(await app.workers()) == n


async def tick_jobs(app: Registry, name: str) -> dict[int, JobSummary]:
    """The jobs a schedule's ticks created, by tick ms (ids are ``<name>@<tick ms>``)."""
    jobs: dict[int, JobSummary] = {}
    for state in JobState:
        if state is JobState.BLOCKED:
            continue
        for job in await app.list_jobs("default", state, limit=10_000):
            prefix, _, tick = job.id.partition("@")
            if prefix == name and tick.isdigit():
                jobs[int(tick)] = job  # a job seen in two states while it moves is one job
    return jobs


async def all_job_ids(app: Registry) -> list[str]:
    ids: list[str] = []
    for state in JobState:
        if state is not JobState.BLOCKED:
            ids += [j.id for j in await app.list_jobs("default", state, limit=10_000)]
    return ids


def lateness_ms(jobs: dict[int, JobSummary]) -> list[float]:
    return [job.created_at.timestamp() * 1000 - tick for tick, job in sorted(jobs.items())]


def missing(ticks: list[int], step: int = 1000) -> list[int]:
    """Ticks absent between the first and the last one."""
    return [t for a, b in itertools.pairwise(ticks) for t in range(a + step, b, step)]


async def until_wall_clock(deadline: float) -> None:
    await asyncio.sleep(max(0.0, deadline - time.time()))


@pytest.mark.timeout(90)
async def test_three_workers_fire_an_every_second_schedule_once_per_tick(
    app: Registry, workers: Start
) -> None:
    processes = [workers() for _ in range(3)]
    await wait_until(lambda: live_workers(app, 3), timeout=20)
    added = await app.add_schedule("beat-1s", "beat", every=1, args={"label": "tick"})
    assert added.next_run_at is not None
    first_ms = int(added.next_run_at.timestamp() * 1000)
    await until_wall_clock(first_ms / 1000 + 10.2)  # ten ticks go by
    await app.pause_schedule("beat-1s")
    paused_ms = time.time() * 1000
    await wait_until(lambda: _all_succeeded(app, "beat-1s"), timeout=10)
    leader = await app.connection().store.schedules.scheduler_leader("default")
    stop(processes)

    jobs = await tick_jobs(app, "beat-1s")
    ticks = sorted(jobs)
    expected = list(range(first_ms, int(paused_ms) - 100, 1000))
    assert ticks[: len(expected)] == expected, (
        f"missing ticks: {sorted(set(expected) - set(ticks))}"
    )
    assert len(ticks) - len(expected) <= 1  # at most the tick that raced the pause
    assert all(t <= paused_ms for t in ticks)
    ids = await all_job_ids(app)
    assert sorted(ids) == sorted(f"beat-1s@{t}" for t in ticks)  # one job per tick, nothing else
    for job_id in ids:
        job = await app.get_job(job_id)
        assert [a.outcome for a in job.attempts] == [AttemptOutcome.SUCCEEDED]
        assert job.result == "tick"
    late = lateness_ms(jobs)
    assert max(late) < 1000
    runners = {(await app.get_job(i)).attempts[0].pid for i in ids}
    print(
        f"\n[every-second, 3 workers] ticks={len(ticks)} expected>={len(expected)} "
        f"duplicates={len(ids) - len(set(ids))} missed=0 "
        f"lateness p50={statistics.median(late):.1f}ms max={max(late):.1f}ms "
        f"leader={leader} ran_on_pids={len(runners)}"
    )


async def _all_succeeded(app: Registry, name: str) -> bool:
    jobs = await tick_jobs(app, name)
    return bool(jobs) and all(j.state is JobState.SUCCEEDED for j in jobs.values())


@pytest.mark.timeout(90)
async def test_a_killed_leader_is_replaced_without_missing_a_tick(
    app: Registry, workers: Start, redis_url: str
) -> None:
    env = {"JOBMASTER_SCHEDULER_LEASE": "1"}
    processes = [workers("--lease", "2", env=env) for _ in range(3)]
    await wait_until(lambda: live_workers(app, 3), timeout=20)
    added = await app.add_schedule("beat-kill", "beat", every=1)
    assert added.next_run_at is not None
    first_ms = int(added.next_run_at.timestamp() * 1000)
    # Between two renewals (every lease/3) and before a tick: the next tick falls while
    # the dead leader's lease still runs, so it can only be fired late, by another.
    await until_wall_clock(first_ms / 1000 + 3.6)
    store = app.connection().store
    leader = await store.schedules.scheduler_leader("default")
    assert leader is not None
    victim = next(p for p in processes if f"-{p.pid}-" in leader)
    victim.kill()
    killed_ms = time.time() * 1000
    await until_wall_clock(killed_ms / 1000 + 5.2)
    await app.pause_schedule("beat-kill")
    paused_ms = time.time() * 1000
    new_leader = await store.schedules.scheduler_leader("default")
    stop([p for p in processes if p is not victim])

    jobs = await tick_jobs(app, "beat-kill")
    ticks = sorted(jobs)
    assert ticks[0] == first_ms
    assert missing(ticks) == []
    assert ticks[-1] >= paused_ms - 1100
    assert new_leader is not None
    assert new_leader != leader
    gap_from, _ = _gap(redis_url)
    assert gap_from == 0  # a handover is not a stretch without schedulers: nothing was skipped
    late = lateness_ms(jobs)
    print(
        f"\n[leader SIGKILLed, lease 1s] ticks={len(ticks)} missed=0 duplicates=0 "
        f"max lateness={max(late):.0f}ms (the takeover) p50={statistics.median(late):.1f}ms"
    )
    assert 100 < max(late) < 3000  # late during the takeover, but fired


def _gap(redis_url: str) -> tuple[int, int]:
    client = redis.Redis.from_url(redis_url)
    raw: Any = client.hmget(Keys().queue("default").scheduler, ["gap_from", "gap_to"])
    client.close()
    return int(raw[0] or 0), int(raw[1] or 0)


@pytest.mark.timeout(90)
async def test_a_schedule_made_at_run_time_fires_pauses_resumes_and_runs_now(
    app: Registry, workers: Start
) -> None:
    processes = [workers() for _ in range(3)]
    await wait_until(lambda: live_workers(app, 3), timeout=20)

    # Created while the workers run: no restart needed.
    added = await app.add_schedule("pulse", "beat", every=2, args={"label": "pulse"})
    assert added.next_run_at is not None
    first_ms = int(added.next_run_at.timestamp() * 1000)
    await wait_until(lambda: _tick_succeeded(app, "pulse", first_ms), timeout=5)

    # Pause stops it.
    await app.pause_schedule("pulse")
    paused_ms = time.time() * 1000
    await asyncio.sleep(4.5)  # two ticks would have fallen due
    assert all(t < paused_ms for t in await tick_jobs(app, "pulse"))
    assert (await app.get_schedule("pulse")).next_run_at is None

    # Resume starts it again from its next tick.
    resumed = await app.resume_schedule("pulse")
    assert resumed.next_run_at is not None
    resumed_ms = int(resumed.next_run_at.timestamp() * 1000)
    assert resumed_ms > paused_ms + 4000
    await wait_until(lambda: _tick_succeeded(app, "pulse", resumed_ms), timeout=5)

    # Run now: a normal job, and the next tick stays where it was.
    before = (await app.get_schedule("pulse")).next_run_at
    assert before is not None
    handle = await app.trigger_schedule("pulse")
    assert await handle.result(timeout=5) == "pulse"
    after = await app.get_schedule("pulse")
    assert after.next_run_at == before
    next_ms = int(before.timestamp() * 1000)
    await wait_until(lambda: _tick_succeeded(app, "pulse", next_ms), timeout=5)
    jobs = await tick_jobs(app, "pulse")
    assert sorted(jobs) == [first_ms, resumed_ms, next_ms]
    on_time = jobs[next_ms].created_at.timestamp() * 1000 - next_ms
    assert on_time < 500
    ran_now = await handle.info()
    assert ran_now.created_at.timestamp() * 1000 < next_ms - 500
    stop(processes)
    print(
        f"\n[run-time schedule] ticks={sorted(jobs)} run-now={ran_now.id} "
        f"next tick after run-now fired {on_time:.1f}ms after its time"
    )


async def _tick_succeeded(app: Registry, name: str, tick: int) -> bool:
    job = (await tick_jobs(app, name)).get(tick)
    return job is not None and job.state is JobState.SUCCEEDED


@pytest.mark.timeout(120)
async def test_catch_up_policies_after_every_worker_stopped(
    app: Registry, workers: Start, redis_url: str
) -> None:
    env = {"JOBMASTER_SCHEDULER_LEASE": "0.5"}
    policies: dict[str, dict[str, Any]] = {
        "skip": {"catch_up": "skip"},
        "latest": {"catch_up": "latest"},
        "all2": {"catch_up": "all", "catch_up_limit": 2},
        "all": {"catch_up": "all"},
    }
    first = [workers(env=env) for _ in range(3)]
    await wait_until(lambda: live_workers(app, 3), timeout=20)
    for name, options in policies.items():
        await app.add_schedule(name, "beat", every=1, args={"label": name}, **options)
    await asyncio.sleep(3)  # a few ticks on time
    stop(first)
    await asyncio.sleep(4.5)  # nothing runs: four or five ticks fall due
    restarted = time.time()
    second = [workers(env=env) for _ in range(3)]
    until = (restarted + 3) * 1000
    await wait_until(lambda: _tick_after(app, "skip", until), timeout=20)
    stop(second)

    gap_from, gap_to = _gap(redis_url)
    assert gap_to - gap_from > 4000
    in_gap = [t for t in range(gap_from // 1000 * 1000, gap_to + 1, 1000) if gap_from < t < gap_to]
    expected = {"skip": [], "latest": in_gap[-1:], "all2": in_gap[-2:], "all": in_gap}
    report = []
    for name, kept in expected.items():
        ticks = sorted(await tick_jobs(app, name))
        before = [t for t in ticks if t <= gap_from]
        after = [t for t in ticks if t >= gap_to]
        assert [t for t in ticks if gap_from < t < gap_to] == kept, name
        assert missing(before) == [], name
        assert missing(after) == [], name
        assert gap_from - before[-1] < 1000, name  # nothing missed before the stop
        assert after[0] - gap_to <= 1000, name  # nor after the restart
        report.append(f"{name}: {len(kept)} of {len(in_gap)} missed ticks run")
    print(f"\n[catch-up after a {(gap_to - gap_from) / 1000:.1f}s stop] " + "; ".join(report))


async def _tick_after(app: Registry, name: str, ms: float) -> bool:
    return any(tick > ms for tick in await tick_jobs(app, name))
