"""Prometheus metrics: ``jobmaster worker --metrics-port`` serves exact counters, histograms
and the slots gauge of a real worker process."""

from __future__ import annotations

import http.client
import signal
import socket
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobmaster import JobState, Registry
from tests.conftest import start_worker, stop_process, wait_until

OPSAPP = "apps.opsapp:registry"


def free_port(span: int = 1) -> int:
    """A port of 127.0.0.1 free now, with the ``span - 1`` ports after it."""
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        try:
            for offset in range(span):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port + offset))
        except OSError:
            continue
        return port
    raise AssertionError("no free ports")


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics`` by name and labels (empty when nothing answers yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
            text = reply.read().decode()
    except (OSError, http.client.HTTPException):  # not serving yet (or a self-connect)
        return {}
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
async def opsapp(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Registry]:
    """The registry of the operations tests' app, as its worker processes import it."""
    monkeypatch.setenv("JOBMASTER_REDIS_URL", redis_url)
    from tests.apps import opsapp as module

    assert module.registry.settings.redis_url == redis_url
    yield module.registry
    await module.registry.aclose()


async def test_metrics_count_every_job_of_a_worker_process(
    opsapp: Registry, redis_url: str
) -> None:
    from tests.apps.opsapp import double, explode, flaky

    await double.enqueue_many([(n,) for n in range(90)])
    await explode.enqueue_many([(f"boom {n}",) for n in range(6)])
    await flaky.enqueue_many([() for _ in range(4)])  # 100 jobs, 104 attempts
    port = free_port()
    worker = start_worker(
        OPSAPP, redis_url, "--concurrency", "8", "--metrics-port", str(port),
        "--metrics-host", "127.0.0.1",
    )  # fmt: skip
    try:
        succeeded = ("jobmaster_jobs_succeeded_total", (("name", "double"), ("queue", "ops")))
        lucky = ("jobmaster_jobs_succeeded_total", (("name", "flaky"), ("queue", "ops")))

        def done() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            samples = scrape(port)
            return samples if samples.get(succeeded) == 90 and samples.get(lucky) == 4 else {}

        samples = await wait_until(done, timeout=30)
    finally:
        stop_process(worker)

    def value(name: str, job: str, suffix: str = "_total") -> float:
        return samples.get((f"jobmaster_{name}{suffix}", (("name", job), ("queue", "ops"))), 0)

    assert value("jobs_started", "double") == 90
    assert value("jobs_started", "explode") == 6
    assert value("jobs_started", "flaky") == 8
    assert value("jobs_failed", "explode") == 6
    assert value("jobs_failed", "flaky") == 0
    assert value("jobs_retried", "flaky") == 4
    assert value("jobs_retried", "explode") == 0
    assert value("attempt_duration_seconds", "double", "_count") == 90
    assert value("attempt_duration_seconds", "flaky", "_count") == 8
    assert value("enqueue_to_start_seconds", "flaky", "_count") == 4  # first attempts only
    assert value("enqueue_to_start_seconds", "double", "_sum") > 0
    assert samples[("jobmaster_slots", ())] == 8
    assert samples[("jobmaster_slots_busy", ())] == 0


def test_a_bad_metrics_port_is_refused(redis_url: str) -> None:
    worker = start_worker(OPSAPP, redis_url, "--metrics-port", "70000")
    out, _ = worker.communicate(timeout=20)
    assert worker.returncode == 2
    assert "must be a TCP port from 1 to 65535, got 70000" in out


async def test_each_worker_process_serves_its_own_port(opsapp: Registry, redis_url: str) -> None:
    from tests.apps.opsapp import double

    await double.enqueue_many([(n,) for n in range(40)])
    port = free_port(span=2)
    supervisor = start_worker(
        OPSAPP, redis_url, "--processes", "2", "--concurrency", "2",
        "--metrics-port", str(port), "--metrics-host", "127.0.0.1",
    )  # fmt: skip
    started = ("jobmaster_jobs_started_total", (("name", "double"), ("queue", "ops")))
    try:

        def counts() -> list[float] | None:
            both = [scrape(port), scrape(port + 1)]
            values = [samples.get(started, 0) for samples in both]
            return values if all(both) and sum(values) == 40 else None

        per_process = await wait_until(counts, timeout=30)
    finally:
        stop_process(supervisor)
    assert sum(per_process) == 40


async def test_lost_attempts_are_counted_by_queue_and_name(
    opsapp: Registry, redis_url: str, tmp_path: Path
) -> None:
    from tests.apps.opsapp import chatty, double

    gate = tmp_path / "gate"
    handles = await chatty.enqueue_many([(str(gate),)] * 3)
    doomed = start_worker(OPSAPP, redis_url, "--lease", "1", "--heartbeat", "0.3")
    try:
        await wait_until(lambda: _active(opsapp, 3), timeout=15)
    finally:
        stop_process(doomed, signal.SIGKILL)  # its three attempts are lost
    await double.enqueue(1)
    gate.touch()
    port = free_port()
    worker = start_worker(
        OPSAPP, redis_url, "--metrics-port", str(port), "--metrics-host", "127.0.0.1",
    )  # fmt: skip
    try:
        assert [await h.result(timeout=20) for h in handles] == ["done"] * 3
        samples = await wait_until(lambda: scrape(port), timeout=10)
    finally:
        stop_process(worker)
    lost = {
        labels: v for (name, labels), v in samples.items() if name == "jobmaster_jobs_lost_total"
    }
    assert lost == {(("name", "chatty"), ("queue", "ops")): 3}


async def _active(registry: Registry, count: int) -> bool:
    return (await registry.count_jobs("ops"))[JobState.ACTIVE] == count


async def test_running_attempts_count_as_started_and_busy(
    opsapp: Registry, redis_url: str, tmp_path: Path
) -> None:
    from tests.apps.opsapp import chatty

    gate = tmp_path / "gate"
    handles = await chatty.enqueue_many([(str(gate),)] * 2)
    port = free_port()
    worker = start_worker(
        OPSAPP, redis_url, "--metrics-port", str(port), "--metrics-host", "127.0.0.1",
    )  # fmt: skip
    started = ("jobmaster_jobs_started_total", (("name", "chatty"), ("queue", "ops")))
    succeeded = ("jobmaster_jobs_succeeded_total", (("name", "chatty"), ("queue", "ops")))
    try:
        running = await wait_until(lambda: (s := scrape(port)).get(started) == 2 and s, timeout=15)
        assert running[("jobmaster_slots_busy", ())] == 2
        assert running.get(succeeded, 0) == 0
        gate.touch()
        assert [await h.result(timeout=10) for h in handles] == ["done"] * 2
        ended = await wait_until(lambda: (s := scrape(port)).get(succeeded) == 2 and s, timeout=10)
    finally:
        stop_process(worker)
    assert ended[started] == 2  # counted once, running then ended
    assert ended[("jobmaster_slots_busy", ())] == 0
