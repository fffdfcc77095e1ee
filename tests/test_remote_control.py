"""Remote control of real `jobmaster worker` processes: pause, resume, drain and stop while
they run jobs, by id, by host and all; commands to dead workers are reported undelivered."""

from __future__ import annotations

import json
import signal
import socket
import subprocess

import pytest
import redis

from jobmaster import AttemptOutcome, JobState, Registry
from jobmaster.models import WorkerInfo
from tests.conftest import PROCAPP as APP
from tests.conftest import finish, run_cli, start_worker, stop_process, wait_until

FAST = ("--heartbeat", "0.2", "--lease", "2", "--concurrency", "4")


async def _listed(registry: Registry, count: int = 1) -> list[WorkerInfo]:
    workers = await registry.workers()
    return workers if len(workers) == count else []


async def _idle(registry: Registry) -> list[WorkerInfo]:
    workers = await registry.workers()
    return workers if workers and not workers[0].running else []


async def _counts(registry: Registry, **expected: int) -> bool:
    counts = await registry.count_jobs("default")
    return all(counts[JobState(state)] == n for state, n in expected.items())


async def _worker(
    registry: Registry, redis_url: str, *args: str
) -> tuple[subprocess.Popen[str], str]:
    process = start_worker(APP, redis_url, *FAST, *args)
    (info,) = await wait_until(lambda: _listed(registry), timeout=10)
    return process, info.id


async def test_pause_keeps_running_jobs_and_claims_nothing_until_resumed(
    procapp: Registry, redis_url: str
) -> None:
    from tests.apps.procapp import add, sleepy

    worker, worker_id = await _worker(procapp, redis_url)
    try:
        running = await sleepy.enqueue_many([(0.6,)] * 2)
        await wait_until(lambda: _counts(procapp, active=2), timeout=10)
        (result,) = await procapp.pause_worker(worker_id)
        assert (result.delivered, result.state) == (True, "paused"), result
        (info,) = await procapp.workers()
        assert info.state == "paused"
        assert sorted(info.running) == sorted(h.id for h in running)

        waiting = await add.enqueue_many([(i, i) for i in range(5)])
        assert [await h.result(timeout=5) for h in running] == [0.6, 0.6]  # kept running
        await wait_until(lambda: _counts(procapp, succeeded=2, queued=5), timeout=5)
        (info,) = await wait_until(lambda: _idle(procapp), timeout=5)  # the next beat
        assert info.state == "paused"
        assert await _counts(procapp, queued=5)  # nothing claimed while paused

        (result,) = await procapp.resume_worker(worker_id)
        assert (result.delivered, result.state) == (True, "running"), result
        assert [await h.result(timeout=5) for h in waiting] == [2 * i for i in range(5)]
        for handle in [*running, *waiting]:
            assert len((await handle.info()).attempts) == 1  # nothing lost or run twice
    finally:
        stop_process(worker)


async def test_drain_finishes_running_jobs_takes_nothing_and_exits_zero(
    procapp: Registry, redis_url: str
) -> None:
    from tests.apps.procapp import add, sleepy

    worker, worker_id = await _worker(procapp, redis_url, "--grace", "10")
    try:
        running = await sleepy.enqueue_many([(0.8,)] * 4)  # every slot taken
        await wait_until(lambda: _counts(procapp, active=4), timeout=10)
        waiting = await add.enqueue_many([(1, 1)] * 3)
        (result,) = await procapp.drain_worker(worker_id)
        assert (result.delivered, result.state) == (True, "draining"), result
        listed = await procapp.workers()
        assert [w.state for w in listed] in ([], ["draining"])
        code, out = finish(worker)
        assert code == 0, out
        for handle in running:
            job = await handle.info()
            assert job.state is JobState.SUCCEEDED
            assert [a.outcome for a in job.attempts] == [AttemptOutcome.SUCCEEDED]
        assert [(await h.info()).state for h in waiting] == [JobState.QUEUED] * 3
        assert await procapp.workers() == []
    finally:
        stop_process(worker)


async def test_stop_is_sigterm_and_a_second_stop_hands_jobs_back_at_once(
    procapp: Registry, redis_url: str
) -> None:
    from tests.apps.procapp import sleepy

    worker, worker_id = await _worker(procapp, redis_url, "--grace", "30")
    try:
        handle = await sleepy.enqueue(30)
        await wait_until(lambda: _counts(procapp, active=1), timeout=10)
        (result,) = await procapp.stop_worker(worker_id)
        assert (result.delivered, result.state) == (True, "draining"), result
        assert worker.poll() is None  # within its grace, the job keeps running
        await procapp.stop_worker(worker_id)  # as a second SIGTERM
        code, out = finish(worker, timeout=10)
        assert code == 0, out
        job = await handle.info()
        assert job.state is JobState.QUEUED  # handed back, not lost
        assert job.attempts[-1].error is not None
        assert job.attempts[-1].error.type == "WorkerShutdown"
    finally:
        stop_process(worker)


async def test_command_to_a_dead_worker_is_not_delivered(
    procapp: Registry, redis_url: str, raw_redis: redis.Redis
) -> None:
    worker, worker_id = await _worker(procapp, redis_url, "--lease", "30", "--heartbeat", "5")
    stop_process(worker, signal.SIGKILL)
    # its heartbeat is still listed (for a lease), but nobody answers
    (result,) = await procapp.pause_worker(worker_id, timeout=0.5)
    assert not result.delivered
    assert result.state is None
    assert "no acknowledgement" in result.detail
    assert raw_redis.xlen(f"jobmaster:worker:{worker_id}:commands") == 0  # withdrawn

    (gone,) = await procapp.drain_worker("no-such-worker")
    assert not gone.delivered
    assert "no live heartbeat" in gone.detail


async def test_commands_by_host_and_to_all(procapp: Registry, redis_url: str) -> None:
    first = start_worker(APP, redis_url, *FAST)
    second = start_worker(APP, redis_url, *FAST)
    try:
        await wait_until(lambda: _listed(procapp, 2), timeout=10)
        paused = await procapp.pause_worker(host=socket.gethostname())
        assert [(r.delivered, r.state) for r in paused] == [(True, "paused")] * 2
        assert {w.state for w in await procapp.workers()} == {"paused"}
        assert await procapp.resume_worker(host="elsewhere.example") == []
        resumed = await procapp.resume_worker(all=True)
        assert sorted(r.worker_id for r in resumed) == sorted(r.worker_id for r in paused)
        assert {w.state for w in await procapp.workers()} == {"running"}
        with pytest.raises(ValueError, match="one of"):
            await procapp.pause_worker()
        with pytest.raises(ValueError, match="one of"):
            await procapp.pause_worker("x", all=True)
    finally:
        stop_process(first)
        stop_process(second)


async def test_cli_controls_and_lists_workers(procapp: Registry, redis_url: str) -> None:
    worker, worker_id = await _worker(procapp, redis_url)
    try:
        done = run_cli(redis_url, "workers", "pause", worker_id, "--json")
        assert done.returncode == 0, done.stderr
        (result,) = json.loads(done.stdout)
        assert result["delivered"] is True
        assert result["state"] == "paused"

        listed = run_cli(redis_url, "workers", "--json")
        assert listed.returncode == 0, listed.stderr
        (info,) = json.loads(listed.stdout)
        assert info["id"] == worker_id
        assert info["state"] == "paused"
        assert info["telemetry"]["rss_bytes"] > 0

        table = run_cli(redis_url, "workers")
        assert worker_id in table.stdout
        assert "paused" in table.stdout

        resumed = run_cli(redis_url, "workers", "resume", "--all")
        assert resumed.returncode == 0, resumed.stderr
        assert "running" in resumed.stdout

        missing = run_cli(redis_url, "workers", "drain", "no-such-worker")
        assert missing.returncode == 1
        assert "no live heartbeat" in missing.stdout

        usage = run_cli(redis_url, "workers", "stop")
        assert usage.returncode == 2
        assert "give one of ID, --host HOST or --all" in usage.stderr
    finally:
        stop_process(worker)


async def test_supervised_children_drained_or_stopped_are_not_replaced(
    procapp: Registry, redis_url: str
) -> None:
    from tests.apps.procapp import sleepy

    supervisor = start_worker(APP, redis_url, *FAST, "--processes", "2", "--grace", "10")
    try:
        first, second = await wait_until(lambda: _listed(procapp, 2), timeout=20)
        running = await sleepy.enqueue_many([(0.8,)] * 8)  # every slot of both children
        await wait_until(lambda: _counts(procapp, active=8), timeout=10)

        (drained,) = await procapp.drain_worker(first.id)
        assert (drained.delivered, drained.state) == (True, "draining"), drained
        # the drained child finishes its jobs and exits; none takes its place
        (left,) = await wait_until(lambda: _listed(procapp, 1), timeout=10)
        assert left.id == second.id
        assert supervisor.poll() is None  # the other child still runs

        (stopped,) = await procapp.stop_worker(second.id)
        assert (stopped.delivered, stopped.state) == (True, "draining"), stopped
        code, out = finish(supervisor, timeout=20)  # every child ended: the supervisor too
        assert code == 0, out
        assert "not replaced" in out
        assert "restarting" not in out
        for handle in running:  # nothing lost: each ran once, to the end
            job = await handle.info()
            assert job.state is JobState.SUCCEEDED
            assert [a.outcome for a in job.attempts] == [AttemptOutcome.SUCCEEDED]
        assert await procapp.workers() == []
    finally:
        stop_process(supervisor)
