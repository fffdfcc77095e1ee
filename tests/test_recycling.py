"""Worker recycling with real worker processes: --max-jobs and --max-memory."""

from __future__ import annotations

import signal

import pytest

from jobmaster import JobState, Registry
from jobmaster.errors import ConfigError
from jobmaster.worker.recycling import parse_size
from tests.conftest import PROCAPP as APP
from tests.conftest import finish, run_cli, start_worker, wait_until


async def test_a_worker_exits_after_max_jobs_having_finished_them(
    procapp: Registry, redis_url: str
) -> None:
    from tests.apps.procapp import sleepy

    handles = await sleepy.enqueue_many([(0.2,)] * 10)
    code, out = finish(start_worker(APP, redis_url, "--max-jobs", "3"), timeout=15)
    assert code == 0, out  # not a burst worker: it stopped because it was recycled
    assert "recycling the worker" in out
    states = [(await h.info()).state for h in handles]
    assert states.count(JobState.SUCCEEDED) == 3  # the ones it took, finished
    assert states.count(JobState.QUEUED) == 7


async def test_a_worker_exits_once_its_memory_passes_max_memory(
    procapp: Registry, redis_url: str
) -> None:
    from tests.apps.procapp import leak

    handles = await leak.enqueue_many([(40, 0.15)] * 20)
    worker = start_worker(APP, redis_url, "--max-memory", "250M", "--concurrency", "1")
    code, out = finish(worker, timeout=30)
    assert code == 0, out
    assert "recycling the worker" in out
    assert "max_memory 250 MiB" in " ".join(out.split())
    states = [(await h.info()).state for h in handles]
    assert 0 < states.count(JobState.SUCCEEDED) < 20
    assert states.count(JobState.SUCCEEDED) + states.count(JobState.QUEUED) == 20


async def test_a_supervisor_replaces_recycled_workers(procapp: Registry, redis_url: str) -> None:
    from tests.apps.procapp import add

    supervisor = start_worker(APP, redis_url, "--processes", "2", "--max-jobs", "5")
    try:
        handles = await add.enqueue_many([(i, 1) for i in range(30)])
        assert [await h.result(timeout=20) for h in handles] == [i + 1 for i in range(30)]
        pids = {(await h.info()).attempts[0].pid for h in handles}
        assert len(pids) >= 6  # at most five jobs per process
        await wait_until(lambda: _live_workers(procapp, 2), timeout=10)
    finally:
        supervisor.send_signal(signal.SIGTERM)
        code, out = finish(supervisor)
    assert code == 0, out
    assert "worker process recycled; starting a new one" in out
    assert "worker process died" not in out


async def _live_workers(procapp: Registry, n: int) -> bool:
    return len(await procapp.workers()) >= n


@pytest.mark.parametrize(
    ("text", "size"),
    [("512M", 512 * 1024**2), ("2G", 2 * 1024**3), ("1.5g", 1536 * 1024**2), ("100", 100),
     ("64KiB", 64 * 1024), ("300MB", 300 * 1024**2)],
)  # fmt: skip
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["", "12X", "M", "-5M", "0", "1.2.3G"])
def test_bad_sizes_are_refused_with_a_clear_error(bad: str, redis_url: str) -> None:
    with pytest.raises(ConfigError, match="size"):
        parse_size(bad)
    if bad:
        result = run_cli(redis_url, "worker", APP, f"--max-memory={bad}")
        assert result.returncode == 2
        assert "--max-memory" in result.stderr
        assert "size" in result.stderr


def test_max_jobs_must_be_positive(redis_url: str) -> None:
    result = run_cli(redis_url, "worker", APP, "--max-jobs", "0")
    assert result.returncode == 2
    assert "--max-jobs: must be >= 1" in result.stderr
