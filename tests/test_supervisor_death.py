"""Children of a `jobmaster worker --processes N` supervisor that is SIGKILLed stop too."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

import psutil

from jobmaster import AttemptOutcome, JobState, Registry
from jobmaster.models import WorkerInfo
from tests.conftest import PROCAPP as APP
from tests.conftest import finish, start_worker, wait_until


def _running(pid: int) -> bool:
    """Whether a process runs (a zombie nobody reaped has stopped)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def _two_workers(procapp: Registry) -> list[WorkerInfo]:
    workers = [w for w in await procapp.workers() if _running(w.pid)]
    return workers if len(workers) == 2 else []


async def test_children_of_a_killed_supervisor_hand_back_their_jobs_and_exit(
    procapp: Registry, redis_url: str
) -> None:
    from tests.apps.procapp import sleepy

    supervisor = start_worker(APP, redis_url, "--processes", "2", "--grace", "0.2")
    children: list[int] = []
    try:
        children = [w.pid for w in await wait_until(lambda: _two_workers(procapp), timeout=15)]
        handle = await sleepy.enqueue(60)
        await wait_until(lambda: _state_is(handle.info(), JobState.ACTIVE), timeout=10)
        os.kill(supervisor.pid, signal.SIGKILL)
        # the pipe of its output closes once every child has exited too
        code, out = finish(supervisor, timeout=15)
        assert code == -signal.SIGKILL
        await wait_until(lambda: not any(_running(pid) for pid in children), timeout=5)
        assert "supervisor died" in out or "signal received" in out
        job = await handle.info()
        assert job.state is JobState.QUEUED  # handed back, not left to its lease
        assert job.attempts[-1].outcome is AttemptOutcome.LOST
        assert job.attempts[-1].error is not None
        assert job.attempts[-1].error.type == "WorkerShutdown"
    finally:
        for pid in children:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
        if supervisor.poll() is None:
            supervisor.kill()
        with contextlib.suppress(subprocess.TimeoutExpired, ValueError):
            supervisor.communicate(timeout=5)


async def _state_is(info: object, state: JobState) -> bool:
    job = await info  # type: ignore[misc]
    return bool(job.state is state)
