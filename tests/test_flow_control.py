"""Flow control: unique jobs, concurrency limits (per job and per key), rate limits and
paused queues, decided by the scripts, with real worker processes. The tests marked
``deployments`` run on one server and on a 3-master Redis Cluster (where the queues
``limited`` and ``paced`` lie on two different masters)."""

from __future__ import annotations

import asyncio
import importlib
import json
import signal
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest

from jobmaster import ConfigError, JobState, Registry
from tests.conftest import (
    ROOT,
    command_calls,
    live_worker,
    run_cli,
    start_worker,
    stop_process,
    wait_until,
)

APP = "apps.limitsapp:registry"


@pytest.fixture
async def app(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Registry]:
    """The test application's registry, as the worker processes import it (made again for
    each test: its Redis is the server or the cluster)."""
    monkeypatch.setenv("JOBMASTER_REDIS_URL", redis_url)
    from tests.apps import limitsapp

    limitsapp = importlib.reload(limitsapp)
    yield limitsapp.registry
    await limitsapp.registry.aclose()


@contextmanager
def workers(redis_url: str, count: int, *args: str) -> Iterator[list[Any]]:
    processes = [
        start_worker(APP, redis_url, *args, cwd=ROOT / "tests", log_level="warning")
        for _ in range(count)
    ]
    try:
        yield processes
    finally:
        for process in processes:
            stop_process(process)


async def attempt_spans(
    registry: Registry, queue: str, ids: list[str]
) -> list[tuple[datetime, datetime]]:
    """(start, end) of every attempt of these jobs, as Redis's clock recorded them."""
    spans = []
    for job_id in ids:
        job = await registry.get_job(job_id, queue=queue)
        assert job is not None
        for attempt in job.attempts:
            assert attempt.finished_at is not None, f"{job_id}: attempt {attempt.number} runs"
            spans.append((attempt.started_at, attempt.finished_at))
    return spans


def most_at_once(spans: Sequence[tuple[Any, Any]]) -> int:
    """The most spans open at the same instant (an end before a start at the same ms)."""
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = most = 0
    for _, step in points:
        running += step
        most = max(most, running)
    return most


async def all_succeeded(registry: Registry, queue: str, ids: list[str]) -> bool:
    for job_id in ids:
        job = await registry.get_job(job_id, queue=queue)
        if job is None or job.state is not JobState.SUCCEEDED:
            return False
    return True


@pytest.mark.deployments
async def test_max_running_is_never_exceeded_with_a_worker_killed_mid_run(
    app: Registry, redis_url: str
) -> None:
    from tests.apps.limitsapp import limited

    handles = await limited.enqueue_many([(n,) for n in range(12)])
    ids = [h.id for h in handles]
    with workers(redis_url, 3, "--queues", "limited", "--concurrency", "4", "--lease", "1") as ps:

        async def started() -> bool:
            jobs = [await app.get_job(i, queue="limited") for i in ids]
            return sum(1 for j in jobs if j and j.state is JobState.ACTIVE) >= 2

        await wait_until(started, timeout=30)
        ps[0].send_signal(signal.SIGKILL)  # whatever it holds is lost, and reclaimed
        await wait_until(lambda: all_succeeded(app, "limited", ids), timeout=60)
    spans = await attempt_spans(app, "limited", ids)
    assert most_at_once(spans) == 2


async def test_a_limit_per_key_holds_for_each_key_while_other_keys_run(
    app: Registry, redis_url: str
) -> None:
    from tests.apps.limitsapp import per_account

    calls = [(account, n) for n in range(4) for account in ("a", "b", "c")]
    handles = await per_account.enqueue_many(calls)
    with workers(redis_url, 2, "--queues", "limited", "--concurrency", "6"):
        await wait_until(lambda: all_succeeded(app, "limited", [h.id for h in handles]), 60)
    by_account: dict[str, list[str]] = {}
    for (account, _), handle in zip(calls, handles, strict=True):
        by_account.setdefault(account, []).append(handle.id)
    for account, ids in by_account.items():
        assert most_at_once(await attempt_spans(app, "limited", ids)) == 1, account
    everything = await attempt_spans(app, "limited", [h.id for h in handles])
    assert most_at_once(everything) >= 2  # the keys ran side by side


async def test_a_limited_job_at_the_head_holds_back_no_other_job(
    app: Registry, redis_url: str
) -> None:
    from tests.apps.limitsapp import limited, plain

    slow = await limited.enqueue_many([(n,) for n in range(8)])  # 4 x 0.3 s, two at a time
    quick = await plain.enqueue_many([(n,) for n in range(20)])
    with workers(redis_url, 1, "--queues", "limited", "--concurrency", "4"):
        await wait_until(lambda: all_succeeded(app, "limited", [h.id for h in quick]), 30)
        slow_jobs = [await app.get_job(h.id, queue="limited") for h in slow]
        # the quick jobs, behind the limited ones in the stream, did not wait for them
        assert sum(1 for j in slow_jobs if j and j.state is JobState.SUCCEEDED) < 8
        await wait_until(lambda: all_succeeded(app, "limited", [h.id for h in slow]), 30)


async def test_a_rate_limit_never_starts_more_in_any_window(app: Registry, redis_url: str) -> None:
    from tests.apps.limitsapp import paced

    handles = await paced.enqueue_many([(n,) for n in range(16)])
    ids = [h.id for h in handles]
    with workers(redis_url, 2, "--queues", "paced", "--concurrency", "8"):
        await wait_until(lambda: all_succeeded(app, "paced", ids), timeout=30)
    starts = sorted(s for s, _ in await attempt_spans(app, "paced", ids))
    for i, start in enumerate(starts):
        in_window = [s for s in starts[i:] if (s - start).total_seconds() < 1.0]
        assert len(in_window) <= 5, f"{len(in_window)} starts within 1 s of {start}"
    # and it does not crawl: 16 starts at 5/s take a little over 3 s
    assert (starts[-1] - starts[0]).total_seconds() < 6


async def test_a_worker_with_fewer_slots_than_the_rate_admits_keeps_up(
    app: Registry, redis_url: str
) -> None:
    from tests.apps.limitsapp import paced

    handles = await paced.enqueue_many([(n,) for n in range(8)])
    ids = [h.id for h in handles]
    # one slot: each claim fills it before the rate's window is full, and the jobs held
    # back must stay ready for the next claim
    with workers(redis_url, 1, "--queues", "paced", "--concurrency", "1"):
        await wait_until(lambda: all_succeeded(app, "paced", ids), timeout=30)
    starts = sorted(s for s, _ in await attempt_spans(app, "paced", ids))
    assert (starts[-1] - starts[0]).total_seconds() < 3  # 8 at 5/s: a little over 1 s


@pytest.mark.deployments
async def test_racing_producers_make_one_job_per_unique_key(app: Registry) -> None:
    from tests.apps.limitsapp import refresh

    results: list[Any] = []
    barrier = threading.Barrier(20)

    def produce(account: str) -> None:
        barrier.wait()
        results.append(refresh.enqueue_sync(account))

    threads = [threading.Thread(target=produce, args=(f"acct-{i % 2}",)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    created = [h for h in results if h.created]
    assert len(created) == 2  # one per account
    for handle in results:
        twin = next(c for c in created if c.id == handle.id)
        assert twin is not None
    assert await app.count_jobs("uniques") == {
        **{s: 0 for s in JobState},
        JobState.QUEUED: 2,
    }


@pytest.mark.deployments
async def test_a_unique_key_is_free_again_once_its_job_ended(app: Registry, redis_url: str) -> None:
    from tests.apps.limitsapp import report

    first = await report.enqueue("acme", "monday")
    same_key = await report.enqueue("acme", "tuesday")  # the key is the account only
    other = await report.enqueue("globex", "monday")
    assert [first.created, same_key.created, other.created] == [True, False, True]
    assert same_key.id == first.id
    many = await report.enqueue_many([("acme", "x"), ("initech", "y"), ("initech", "z")])
    assert [h.created for h in many] == [False, True, False]
    assert [many[0].id, many[2].id] == [first.id, many[1].id]
    with workers(redis_url, 1, "--queues", "uniques"):
        assert await first.result(timeout=20) == "acme monday"
        again = await report.enqueue("acme", "wednesday")
        assert again.created
        assert again.id != first.id
        assert await again.result(timeout=20) == "acme wednesday"


@pytest.mark.deployments
async def test_unique_for_keeps_the_key_after_the_end(app: Registry, redis_url: str) -> None:
    from tests.apps.limitsapp import debounced

    first = await debounced.enqueue("acme")
    with workers(redis_url, 1, "--queues", "uniques"):
        assert await first.result(timeout=20) == "acme"
    again = await debounced.enqueue("acme")
    assert not again.created
    assert again.id == first.id


@pytest.mark.deployments
async def test_a_paused_queue_starts_nothing_until_resumed(app: Registry, redis_url: str) -> None:
    from tests.apps.limitsapp import paced, plain

    assert await app.pause_queue("limited") is True
    assert await app.pause_queue("limited") is False  # paused already
    held = await plain.enqueue(1)
    with workers(redis_url, 1, "--queues", "limited,paced"):
        # the worker claims from `limited` first: it ran the job of `paced`, not this one
        assert await (await paced.enqueue(7)).result(timeout=20) == 7
        job = await app.get_job(held.id, queue="limited")
        assert job is not None
        assert job.state is JobState.QUEUED
        assert await app.paused_queues() == ["limited"]
        assert await app.resume_queue("limited") is True
        assert await held.result(timeout=10) == 1
    assert await app.paused_queues() == []


@pytest.mark.deployments
async def test_limits_are_visible(app: Registry) -> None:
    from tests.apps.limitsapp import per_account

    await per_account.enqueue("a", 1)
    await per_account.enqueue("b", 1)
    states = await app.queue_limits("limited")
    assert [(s.key, s.max_running, s.running, s.waiting) for s in states] == [
        ("per_account:a", 1, 0, 0),
        ("per_account:b", 1, 0, 0),
    ]


async def test_a_job_held_back_by_its_limit_says_so(registry: Registry) -> None:
    gate = asyncio.Event()

    @registry.job(queue="held", max_running=1)
    async def one_at_a_time(n: int) -> int:
        await gate.wait()
        return n

    first, second = await one_at_a_time.enqueue_many([(1,), (2,)])
    waiting = await registry.get_job(second.id, queue="held")
    assert waiting is not None
    assert waiting.held_back is None  # no worker read it yet: it is on its stream
    async with live_worker(registry, queues=["held"], concurrency=2):

        async def held() -> bool:
            job = await registry.get_job(second.id, queue="held")
            return job is not None and job.held_back == "limit"

        await wait_until(held, timeout=10)
        job = await registry.get_job(second.id, queue="held")
        assert job is not None
        assert job.state is JobState.QUEUED
        running = await registry.get_job(first.id, queue="held")
        assert running is not None
        assert running.held_back is None
        (summary,) = await registry.list_jobs("held", JobState.QUEUED)
        assert summary.id == second.id
        assert summary.held_back == "limit"
        (found,) = await registry.list_jobs("held", JobState.QUEUED, name="one_at_a_time")
        assert found.held_back == "limit"
        gate.set()
        assert await second.result(timeout=10) == 2
    job = await registry.get_job(second.id, queue="held")
    assert job is not None
    assert job.held_back is None


async def test_a_job_held_for_resources_says_so(registry: Registry) -> None:
    @registry.job(queue="held", resources={"gpu": 1})
    async def train(n: int) -> int:
        return n

    handle = await train.enqueue(1)
    async with live_worker(registry, queues=["held"], resources="cpu=2"):

        async def held() -> bool:
            job = await registry.get_job(handle.id, queue="held")
            return job is not None and job.held_back == "resources"

        await wait_until(held, timeout=10)
        (summary,) = await registry.list_jobs("held", JobState.QUEUED)
        assert summary.held_back == "resources"
    async with live_worker(registry, queues=["held"], resources="gpu=1"):
        assert await handle.result(timeout=10) == 1
    job = await registry.get_job(handle.id, queue="held")
    assert job is not None
    assert job.held_back is None


async def test_reading_jobs_without_controls_looks_in_no_wait_list(
    registry: Registry, raw_redis: Any
) -> None:
    @registry.job(queue="plain")
    async def plain(n: int) -> int:
        return n

    handles = await plain.enqueue_many([(n,) for n in range(20)])
    before = command_calls(raw_redis, "lpos")
    listed = await registry.list_jobs("plain", JobState.QUEUED)
    job = await registry.get_job(handles[0].id, queue="plain")
    assert len(listed) == 20
    assert all(summary.held_back is None for summary in listed)
    assert job is not None
    assert job.held_back is None
    assert command_calls(raw_redis, "lpos") == before


def test_bad_controls_are_refused_at_declaration(registry: Registry) -> None:
    with pytest.raises(ConfigError, match="rate_limit must look like"):
        registry.job(rate_limit="fast")(lambda: None)
    with pytest.raises(ConfigError, match="names acount, which the handler does not take"):

        @registry.job(unique_key="report:{acount}")
        def a(account: str) -> None: ...

    with pytest.raises(ConfigError, match="limit_key= sets what max_running="):

        @registry.job(limit_key="{account}")
        def b(account: str) -> None: ...

    with pytest.raises(ConfigError, match="max_running"):
        registry.job(max_running=0)(lambda: None)


@pytest.mark.deployments
async def test_queues_are_paused_and_their_limits_shown_from_the_command_line(
    app: Registry, redis_url: str
) -> None:
    from tests.apps.limitsapp import per_account
    from tests.conftest import run_cli

    await per_account.enqueue("a", 1)
    paused = run_cli(redis_url, "queues", "pause", "limited")
    assert paused.returncode == 0, paused.stderr
    assert "queue limited paused" in paused.stdout
    assert await app.paused_queues() == ["limited"]
    listing = run_cli(redis_url, "queues", "--app", APP)
    assert "limited (paused)" in listing.stdout
    assert "limited: per_account:a: running 0/1, held back 0" in listing.stdout
    document = run_cli(redis_url, "queues", "--app", APP, "--json")
    limited = next(q for q in json.loads(document.stdout) if q["queue"] == "limited")
    assert limited["paused"] is True
    assert limited["limits"] == [
        {"key": "per_account:a", "max_running": 1, "rate": None, "running": 0, "held_back": 0}
    ]
    resumed = run_cli(redis_url, "queues", "resume", "limited")
    assert "queue limited resumed" in resumed.stdout
    assert await app.paused_queues() == []
    bad = run_cli(redis_url, "queues", "pause", "no such queue")
    assert bad.returncode != 0
    assert "queue" in bad.stderr


async def test_ticks_of_a_unique_scheduled_job_do_not_pile_up(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBMASTER_REDIS_URL", redis_url)
    from tests.apps import tickapp

    registry = tickapp.registry
    worker = start_worker(
        "apps.tickapp:registry",
        redis_url,
        "--queues",
        "ticks",
        "--concurrency",
        "4",
        log_level="warning",
    )
    try:

        async def ran_twice() -> list[str]:
            jobs = await registry.list_jobs("ticks", state=JobState.SUCCEEDED)
            return [j.id for j in jobs] if len(jobs) >= 2 else []

        ids = await wait_until(ran_twice, timeout=30)
        spans = await attempt_spans(registry, "ticks", ids)
        assert most_at_once(spans) == 1
        # about one tick a second fired, but only a job every 2.5 s or so was created
        first, second = sorted(s for s, _ in spans)[:2]
        assert (second - first).total_seconds() >= 2.4
    finally:
        stop_process(worker)
        await registry.aclose()


@pytest.mark.parametrize("in_a_process", [False, True], ids=["async", "process"])
async def test_rate_limited_sends_the_job_back_without_using_a_try(
    app: Registry, redis_url: str, tmp_path: Any, in_a_process: bool
) -> None:
    from tests.apps.limitsapp import calls_upstream, calls_upstream_in_a_process

    if in_a_process:
        handle = await calls_upstream_in_a_process.enqueue(3, str(tmp_path / "count"))
    else:
        handle = await calls_upstream.enqueue(3)
    with workers(redis_url, 1, "--queues", "upstream"):
        # max_attempts=2: three refusals, a failure and a success
        assert await handle.result(timeout=30) == 5
    job = await app.get_job(handle.id, queue="upstream")
    assert job is not None
    assert [a.outcome.value for a in job.attempts if a.outcome] == [
        "rate_limited", "rate_limited", "rate_limited", "failed", "succeeded",
    ]  # fmt: skip


async def test_a_gpu_job_waits_for_a_worker_with_a_free_gpu_while_cpu_jobs_run(
    app: Registry, redis_url: str
) -> None:
    from tests.apps.limitsapp import crunch, train

    gpu_jobs = await train.enqueue_many([(n,) for n in range(3)])
    cpu_jobs = await crunch.enqueue_many([(n,) for n in range(12)])
    common = ("--queues", "hardware", "--concurrency", "4")
    with (
        workers(redis_url, 1, *common, "--resources", "cpu=2") as cpu_only,
        workers(redis_url, 1, *common, "--resources", "gpu=1,mem=4G") as gpu_box,
    ):
        ids = [h.id for h in gpu_jobs + cpu_jobs]
        await wait_until(lambda: all_succeeded(app, "hardware", ids), timeout=60)
        listed = {w.pid: w for w in await app.workers()}
        cpu_worker = listed[cpu_only[0].pid].id
        gpu_worker = listed[gpu_box[0].pid].id
        assert listed[gpu_box[0].pid].resources == {"gpu": 1.0, "mem": 4 * 1024**3}
    for handles, where in ((gpu_jobs, gpu_worker), (cpu_jobs, cpu_worker)):
        for handle in handles:
            job = await app.get_job(handle.id, queue="hardware")
            assert job is not None
            assert {a.worker_id for a in job.attempts} == {where}
    # the spans the handlers saw (an attempt's end is recorded a little after it ends)
    gpu_spans = [tuple(await h.result(timeout=5)) for h in gpu_jobs]
    cpu_spans = [tuple(await h.result(timeout=5)) for h in cpu_jobs]
    assert most_at_once(gpu_spans) == 1  # one GPU
    assert most_at_once(cpu_spans) == 2  # two CPUs
    # the CPU jobs behind the GPU jobs did not wait for them
    assert min(e for _, e in cpu_spans) < max(e for _, e in gpu_spans)


async def test_a_job_no_live_worker_could_fit_is_shown_as_such(
    app: Registry, redis_url: str
) -> None:
    from tests.apps.limitsapp import too_big

    handle = await too_big.enqueue()
    with workers(redis_url, 1, "--queues", "hardware", "--resources", "gpu=1"):
        held = await wait_until(lambda: app.held_for_resources("hardware"), timeout=20)
        assert [(h.job_id, h.needs, h.fits_a_live_worker) for h in held] == [
            (handle.id, {"gpu": 8.0}, False)
        ]
        listing = run_cli(redis_url, "queues", "--app", APP)
        assert f"need more than any live worker offers: {handle.id}" in listing.stdout
    job = await app.get_job(handle.id, queue="hardware")
    assert job is not None
    assert job.state is JobState.QUEUED
    # a worker that advertises no resources offers everything: it runs it
    with workers(redis_url, 1, "--queues", "hardware"):
        assert await handle.result(timeout=20) is None


def test_bad_resources_are_refused(registry: Registry, redis_url: str) -> None:
    with pytest.raises(ConfigError, match="size like"):
        registry.job(resources={"mem": "lots"})(lambda: None)
    with pytest.raises(ConfigError, match="resource name"):
        registry.job(resources={"GPU": 1})(lambda: None)
    bad = run_cli(redis_url, "worker", APP, "--resources", "gpu")
    assert bad.returncode == 2
    assert "expected name=amount" in bad.stderr


async def test_an_idle_worker_held_back_by_a_rate_does_not_poll(
    app: Registry, redis_url: str, raw_redis: Any
) -> None:
    from tests.apps.limitsapp import slow_paced
    from tests.conftest import command_calls

    first, second = await slow_paced.enqueue_many([(1,), (2,)])
    with workers(redis_url, 1, "--queues", "slowpace"):
        assert await first.result(timeout=20) == 1
        wait_list = "jobmaster:{slowpace}:limit:wait:slow_paced"
        await wait_until(lambda: raw_redis.llen(wait_list) == 1, timeout=10)
        # held for about 3 s: the worker waits on a blocking read, it does not claim again
        # and again (a claim reads each band's length: XLEN)
        before = command_calls(raw_redis, "xlen")
        await asyncio.sleep(2)
        assert command_calls(raw_redis, "xlen") - before <= 10  # one blocking read's timeout
        assert await second.result(timeout=10) == 2
    starts = sorted(s for s, _ in await attempt_spans(app, "slowpace", [first.id, second.id]))
    assert (starts[1] - starts[0]).total_seconds() >= 3
