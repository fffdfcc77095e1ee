"""Fixtures: one private redis-server for the session (never the machine's own Redis)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from jobmaster import JobHandler, Registry, Retry
from jobmaster.embedded import EmbeddedRedis
from jobmaster.embedded_cluster import EmbeddedCluster
from jobmaster.transport import clients
from jobmaster.worker import Worker

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[EmbeddedCluster]:
    """A private 3-master Redis Cluster for the session."""
    with EmbeddedCluster() as cluster:
        yield cluster


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked ``deployments`` run on one server and on the 3-master cluster."""
    if metafunc.definition.get_closest_marker("deployments") and (
        "redis_url" in metafunc.fixturenames
    ):
        metafunc.parametrize("deployment", ["server", "cluster"], indirect=True)


@pytest.fixture
def deployment(request: pytest.FixtureRequest) -> str:
    """Where the test's Redis runs: ``server`` (one redis-server) or ``cluster``."""
    return str(getattr(request, "param", "server"))


@pytest.fixture
def redis_url(request: pytest.FixtureRequest, deployment: str) -> str:
    """The URL of the session's redis-server (or cluster), emptied for this test."""
    if deployment == "cluster":
        cluster: EmbeddedCluster = request.getfixturevalue("redis_cluster")
        cluster.flushall()
        return cluster.url
    redis_server: EmbeddedRedis = request.getfixturevalue("redis_server")
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def raw_redis(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client (a cluster client on the cluster), to look at what is really in
    Redis."""
    client = clients.sync_client(redis_url, 10.0)
    yield client
    client.close()


@pytest.fixture
async def registry(redis_url: str, tmp_path: Path) -> AsyncIterator[Registry]:
    """An empty registry on the test Redis, with no configuration files or variables."""
    reg = Registry(redis_url, config_dir=tmp_path, environ={})
    yield reg
    await reg.aclose()
    reg.close()


@pytest.fixture
def boom(registry: Registry) -> JobHandler[[str], None]:
    """A job that fails at once, without retries, with ``RuntimeError(why)``."""

    @registry.job(retry=Retry(max_attempts=1))
    def boom(why: str) -> None:
        raise RuntimeError(why)

    return boom


async def wait_until(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01
) -> Any:
    """Wait for an async or sync predicate to become truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def start_worker(
    app: str,
    redis_url: str,
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    log_level: str = "info",
) -> subprocess.Popen[str]:
    """A real `jobmaster worker` process for `app` (module:registry importable from cwd).

    Its output goes to a pipe that :func:`finish` reads at the end: a worker that logs more
    than the pipe holds (64 KB) blocks, so chatty tests pass ``log_level="warning"``."""
    environment = {
        **os.environ,
        "JOBMASTER_REDIS_URL": redis_url,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(cwd or ROOT / "tests")]),
        **(env or {}),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "jobmaster.cli", "--log-level", log_level, "worker", app, *args],
        cwd=cwd or ROOT / "tests",
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@contextlib.asynccontextmanager
async def live_worker(registry: Registry, **options: Any) -> AsyncIterator[Worker]:
    """A worker running as a task of this event loop until the block ends."""
    options.setdefault("grace", 1.0)
    worker = Worker(registry, install_signal_handlers=False, echo_job_logs=False, **options)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)


def command_calls(raw_redis: redis.Redis, *commands: str) -> int:
    """How many times the server ran these commands so far (INFO commandstats)."""
    stats: Any = raw_redis.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in commands)


def run_cli(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`jobmaster ...` as a user runs it, from tests/ (where the test apps live)."""
    env = {
        **os.environ,
        "JOBMASTER_REDIS_URL": redis_url,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
        "COLUMNS": "250",
    }
    return subprocess.run(
        [sys.executable, "-m", "jobmaster.cli", *args],
        cwd=ROOT / "tests",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def stop_process(
    process: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 15.0
) -> None:
    """Send ``sig`` and wait for the process to exit; SIGKILL it after ``timeout``."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


PROCAPP = "apps.procapp:registry"
"""The test application that real `jobmaster worker` processes run (tests/apps/procapp.py)."""


@pytest.fixture
async def procapp(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Registry]:
    """The test application's registry, as the worker process imports it."""
    monkeypatch.setenv("JOBMASTER_REDIS_URL", redis_url)
    from tests.apps import procapp as module

    assert module.registry.settings.redis_url == redis_url  # one server per session
    yield module.registry
    await module.registry.aclose()


def finish(process: subprocess.Popen[str], timeout: float = 20) -> tuple[int, str]:
    """Wait for a process to exit: its exit status and its output."""
    out, _ = process.communicate(timeout=timeout)
    return process.returncode, out
