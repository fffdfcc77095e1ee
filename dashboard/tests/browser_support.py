"""The dashboard's browser tests' fixtures and helpers: the dashboard served by uvicorn on a
free loopback port (``python -m jobmaster_dashboard --app e2e_app:registry``, with token and
basic auth), Debian's Chromium driven through Playwright, the e2e application's registry and
its `jobmaster worker` processes. conftest.py makes the fixtures available to every test."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest
from e2e_app import declare_jobs
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from jobmaster import JobState, Registry
from jobmaster.embedded import EmbeddedRedis, free_port
from tests.conftest import ROOT, start_worker, stop_process

HERE = Path(__file__).resolve().parent
APP = "e2e_app:registry"
TOKEN = "e2e-t0ken"
USER, PASSWORD = "ops", "e2e-passw0rd"
TIMEOUT_MS = 10_000
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
T = TypeVar("T")


def eventually(predicate: Callable[[], T], timeout: float = 10.0, what: str = "") -> T:
    """Poll a synchronous predicate until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what or predicate}")
        time.sleep(0.05)


# -- the server, the browser, the application ---------------------------------------------------


def _wait_until_serving(server: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the dashboard exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/login", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    raise RuntimeError(f"the dashboard did not answer on {url}:\n{log.read_text()}")


@pytest.fixture(scope="module")
def dashboard_url(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The dashboard served by uvicorn in a process of its own, with token and basic auth."""
    port = free_port()
    log = tmp_path_factory.mktemp("dashboard") / "server.log"
    env = {
        **os.environ,
        "JOBMASTER_REDIS_URL": redis_server.url,
        "JOBMASTER_DASHBOARD_TOKEN": TOKEN,
        "JOBMASTER_DASHBOARD_USER": USER,
        "JOBMASTER_DASHBOARD_PASSWORD": PASSWORD,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)]),
    }
    command = [sys.executable, "-m", "jobmaster_dashboard", "--app", APP, "--port", str(port)]
    with log.open("wb") as output:
        server = subprocess.Popen(command, cwd=HERE, env=env, stdout=output, stderr=output)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(server, url, log)
        yield url
    finally:
        stop_process(server, signal.SIGINT, timeout=10)


def chromium_path() -> str:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(found, os.X_OK):
        raise RuntimeError("chromium is not installed: run scripts/setup (apt install chromium)")
    return found


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless (Playwright never downloads a browser here)."""
    launched = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
    yield launched
    launched.close()


@pytest.fixture
def page(browser: Browser, dashboard_url: str) -> Iterator[Page]:
    """A fresh browser context (no cookies) on the dashboard, 1280x800."""
    context = browser.new_context(base_url=dashboard_url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def app(redis_url: str, tmp_path: Path) -> Iterator[Registry]:
    """The e2e application's jobs on the (emptied) test Redis, used from synchronous code."""
    registry = Registry(redis_url, config_dir=tmp_path, environ={})
    declare_jobs(registry)
    yield registry
    registry.close()


def run_burst(redis_url: str, queues: str) -> None:
    """A `jobmaster worker --burst` process: runs what is queued in ``queues``, then exits."""
    worker = start_worker(APP, redis_url, "--burst", "--queues", queues, cwd=HERE)
    output, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, output


@contextmanager
def worker_process(redis_url: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """A long-running `jobmaster worker` process, stopped with SIGTERM at the end."""
    worker = start_worker(APP, redis_url, "--grace", "1", *args, cwd=HERE)
    try:
        yield worker
    finally:
        stop_process(worker)


def log_in(page: Page) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))
    page.get_by_label("Token").fill(TOKEN)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Queues")).to_be_visible()


def job_state(app: Registry, job_id: str) -> JobState:
    return app.run_sync(app.get_job(job_id)).state
