"""An idle worker writes its claim behind its blocking read, so that Redis claims a new job for
it the moment it arrives (one round trip from an enqueue to a start). What a frozen, killed,
paused or stopped idle worker does with that claim: nothing is lost, nothing runs twice."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import redis

from jobmaster import AttemptOutcome, JobState, Registry
from tests.conftest import PROCAPP, finish, start_worker, stop_process, wait_until


def _claims_behind_reads(raw_redis: redis.Redis) -> int:
    """Clients blocked on a read with a command queued behind it (a worker's claim)."""
    clients: Any = raw_redis.client_list()
    return sum(1 for c in clients if "b" in c["flags"] and int(c["qbuf"]) > 0)


def _ran(path: Path) -> list[int]:
    """The pids of the processes that ran the witness job, in order."""
    return [int(line) for line in path.read_text().split()] if path.exists() else []


async def _idle_worker(
    procapp: Registry, redis_url: str, raw_redis: redis.Redis, tmp_path: Path, *args: str
) -> subprocess.Popen[str]:
    """A worker that ran one job and waits for the next with its claim behind its read."""
    from tests.apps.procapp import witness

    worker = start_worker(PROCAPP, redis_url, *args)
    first = await witness.enqueue(str(tmp_path / "first"))
    assert await first.result(timeout=20) == worker.pid
    await wait_until(lambda: _claims_behind_reads(raw_redis) == 1, timeout=10)
    return worker


async def test_a_frozen_idle_workers_job_runs_elsewhere_and_only_there(
    procapp: Registry, redis_url: str, raw_redis: redis.Redis, tmp_path: Path
) -> None:
    from tests.apps.procapp import witness

    frozen = await _idle_worker(procapp, redis_url, raw_redis, tmp_path, "--lease", "2")
    survivor = None
    try:
        frozen.send_signal(signal.SIGSTOP)
        path = tmp_path / "ran"
        handle = await witness.enqueue(str(path))
        # Redis ran the frozen worker's claim: the job is its, for a lease
        job = await wait_until(lambda: _active_on(handle, frozen.pid), timeout=10)
        assert len(job.attempts) == 1
        survivor = start_worker(PROCAPP, redis_url, "--lease", "2")
        assert await handle.result(timeout=30) == survivor.pid
        frozen.send_signal(signal.SIGCONT)
        # the thawed worker reads its claim's answer, too late to run the job: it hands it
        # back (its lease was taken back already, so that changes nothing) and runs on
        later = await witness.enqueue(str(tmp_path / "later"))
        assert await later.result(timeout=20) in (frozen.pid, survivor.pid)
    finally:
        frozen.send_signal(signal.SIGCONT)
        stop_process(frozen)
        if survivor is not None:
            stop_process(survivor)
    assert _ran(path) == [survivor.pid], "the job ran once, on the worker that was not frozen"
    job = await handle.info()
    assert job.state is JobState.SUCCEEDED
    assert [a.outcome for a in job.attempts] == [AttemptOutcome.LOST, AttemptOutcome.SUCCEEDED]
    assert [a.pid for a in job.attempts] == [frozen.pid, survivor.pid]
    _, out = finish(frozen)
    assert "answered too late" in out


async def _active_on(handle: Any, pid: int) -> Any:
    job = await handle.info()
    if job.state is JobState.ACTIVE and job.attempts and job.attempts[-1].pid == pid:
        return job
    return None


async def test_a_killed_idle_workers_claim_dies_with_it(
    procapp: Registry, redis_url: str, raw_redis: redis.Redis, tmp_path: Path
) -> None:
    from tests.apps.procapp import witness

    doomed = await _idle_worker(procapp, redis_url, raw_redis, tmp_path, "--lease", "30")
    doomed.kill()
    finish(doomed)
    await wait_until(lambda: _claims_behind_reads(raw_redis) == 0, timeout=10)
    path = tmp_path / "ran"
    handle = await witness.enqueue(str(path))
    survivor = start_worker(PROCAPP, redis_url, "--lease", "30")
    try:  # at once, not a lease later: nothing claimed it for the dead worker
        assert await handle.result(timeout=20) == survivor.pid
    finally:
        stop_process(survivor)
    job = await handle.info()
    assert [(a.outcome, a.pid) for a in job.attempts] == [(AttemptOutcome.SUCCEEDED, survivor.pid)]
    assert _ran(path) == [survivor.pid]


async def test_an_idle_worker_pauses_resumes_and_stops_with_its_claim_answered(
    procapp: Registry, redis_url: str, raw_redis: redis.Redis, tmp_path: Path
) -> None:
    from tests.apps.procapp import witness

    worker = await _idle_worker(procapp, redis_url, raw_redis, tmp_path)
    try:
        (paused,) = await procapp.pause_worker(all=True)
        assert paused.delivered
        assert paused.state == "paused"
        # the pause ended the wait: no claim of the paused worker is left in Redis
        assert _claims_behind_reads(raw_redis) == 0
        path = tmp_path / "ran"
        handle = await witness.enqueue(str(path))
        assert await handle.state() is JobState.QUEUED
        (resumed,) = await procapp.resume_worker(all=True)
        assert resumed.delivered
        assert await handle.result(timeout=20) == worker.pid
        await wait_until(lambda: _claims_behind_reads(raw_redis) == 1, timeout=10)
        worker.send_signal(signal.SIGTERM)
        code, out = finish(worker, timeout=10)
    finally:
        stop_process(worker)
    assert code == 0, out
    assert _claims_behind_reads(raw_redis) == 0
    assert _ran(path) == [worker.pid]


async def test_a_user_without_client_unblock_claims_after_its_read(
    procapp: Registry, redis_url: str, raw_redis: redis.Redis, tmp_path: Path
) -> None:
    from tests.apps.procapp import witness

    user = "no-client"
    raw_redis.execute_command(
        "ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", "-client|unblock"
    )
    parsed = urlparse(redis_url)
    worker = start_worker(PROCAPP, f"redis://{user}:pw@{parsed.hostname}:{parsed.port}/0")
    try:
        for n in range(3):  # idle in between: each waits, then is claimed after the read
            handle = await witness.enqueue(str(tmp_path / f"ran-{n}"))
            assert await handle.result(timeout=20) == worker.pid
        worker.send_signal(signal.SIGTERM)
        code, out = finish(worker, timeout=10)
    finally:
        stop_process(worker)
        raw_redis.execute_command("ACL", "DELUSER", user)
    assert code == 0, out
    assert "may not run CLIENT ID or CLIENT UNBLOCK" in out
    assert "failed" not in out  # no refused command, at a wait or at the stop
