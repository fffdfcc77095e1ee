"""Telemetry in the heartbeats of a real `jobmaster worker` process: the figures are present
and plausible, and follow what the jobs do (memory they allocate, CPU they burn)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from jobmaster import Registry
from jobmaster.models import WorkerInfo, WorkerTelemetry
from tests.conftest import PROCAPP as APP
from tests.conftest import start_worker, stop_process, wait_until

MIB = 1024 * 1024


async def _first(
    registry: Registry, check: Callable[[WorkerTelemetry], bool] | None = None
) -> WorkerInfo | None:
    """The only worker, once it sent telemetry (that passes ``check``)."""
    workers = await registry.workers()
    if len(workers) != 1 or workers[0].telemetry is None:
        return None
    return workers[0] if check is None or check(workers[0].telemetry) else None


def _start(redis_url: str) -> subprocess.Popen[str]:
    return start_worker(APP, redis_url, "--heartbeat", "0.2", "--lease", "2", "--grace", "0")


async def test_telemetry_is_present_and_plausible(procapp: Registry, redis_url: str) -> None:
    worker = _start(redis_url)
    try:
        info = await wait_until(lambda: _first(procapp), timeout=10)
        t = info.telemetry
        assert isinstance(t, WorkerTelemetry)
        assert 10 * MIB < t.rss_bytes < 2048 * MIB
        assert 0 <= t.cpu_percent <= 100 * 64
        assert 0 <= t.host_cpu_percent <= 100
        assert 0 < t.host_memory_percent <= 100
        assert len(t.load_avg) == 3
        assert all(x >= 0 for x in t.load_avg)
        rates = (
            t.disk_read_bytes_per_second,
            t.disk_write_bytes_per_second,
            t.net_sent_bytes_per_second,
            t.net_recv_bytes_per_second,
        )
        assert all(rate >= 0 for rate in rates)
        # the worker talks to Redis over the loopback at each beat
        await wait_until(lambda: _first(procapp, lambda t: t.net_sent_bytes_per_second > 0))
        assert t.gpus == [] or all(g.memory_total_bytes > 0 for g in t.gpus)
        assert info.running == []
        assert info.state == "running"
    finally:
        stop_process(worker)


async def test_rss_grows_when_a_job_allocates_200_mb(procapp: Registry, redis_url: str) -> None:
    from tests.apps.procapp import leak

    worker = _start(redis_url)
    try:
        before = await wait_until(lambda: _first(procapp), timeout=10)
        assert before.telemetry is not None
        handle = await leak.enqueue(200, seconds=30)
        grown = before.telemetry.rss_bytes + 190 * MIB
        during = await wait_until(
            lambda: _first(procapp, lambda t: t.rss_bytes > grown), timeout=10
        )
        assert during.running == [handle.id]
        assert during.busy == 1
    finally:
        stop_process(worker)


async def test_cpu_percent_follows_a_busy_job(procapp: Registry, redis_url: str) -> None:
    from tests.apps.procapp import spin

    worker = _start(redis_url)
    try:
        await wait_until(lambda: _first(procapp), timeout=10)
        await spin.enqueue(2)
        await wait_until(lambda: _first(procapp, lambda t: t.cpu_percent > 50), timeout=5)
    finally:
        stop_process(worker)
