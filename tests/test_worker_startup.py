"""A worker's start: signals while Redis cannot be reached, refused credentials and missing
ACL permissions (real worker processes, users made with ACL SETUSER on the test's Redis)."""

from __future__ import annotations

import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
import redis

from jobmaster import Registry
from jobmaster.embedded import free_port
from tests.conftest import PROCAPP as APP
from tests.conftest import start_worker


class OutputWatch:
    """The lines a process writes, read as they come (so that a test can wait for one)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} not in the output within {timeout}s:\n{self.text()}")

    def exit_code(self, timeout: float) -> int | None:
        """The exit status, or None if the process still runs after ``timeout`` (killed)."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            self._close()
            return None
        self._close()
        return code

    def _close(self) -> None:
        self._thread.join(5)
        assert self.process.stdout is not None
        self.process.stdout.close()

    def text(self) -> str:
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return " ".join("".join(self.lines).split())  # one line: the console wraps long ones


@pytest.fixture
def acl_user(redis_url: str) -> Iterator[tuple[redis.Redis, str]]:
    """An admin client and the name of a user to create; the user is deleted afterwards."""
    admin = redis.Redis.from_url(redis_url)
    yield admin, "jm-test-user"
    admin.execute_command("ACL", "DELUSER", "jm-test-user")
    admin.close()


def _as_user(redis_url: str, user: str, password: str) -> str:
    parsed = urlparse(redis_url)
    return f"redis://{user}:{password}@{parsed.hostname}:{parsed.port}/0"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_worker_that_cannot_reach_redis_stops_on_a_signal(sig: signal.Signals) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    watch = OutputWatch(start_worker(APP, nowhere))
    line = watch.wait_for("start failed; retrying")
    started = time.monotonic()
    watch.process.send_signal(sig)
    code = watch.exit_code(timeout=10)
    assert code == 0, watch.text()
    assert time.monotonic() - started < 5
    assert "Connection refused" in line  # what went wrong


def test_a_refused_password_stops_the_worker_with_a_clear_error(
    redis_url: str, acl_user: tuple[redis.Redis, str]
) -> None:
    admin, user = acl_user
    admin.execute_command("ACL", "SETUSER", user, "on", ">right", "~*", "&*", "+@all")
    watch = OutputWatch(start_worker(APP, _as_user(redis_url, user, "not-the-password")))
    code = watch.exit_code(timeout=15)
    out = watch.text()
    assert code == 1, out
    assert "refused access" in out
    assert "invalid username-password pair" in out  # what Redis said
    assert "not-the-password" not in out  # the password stays out of the message


def test_missing_acl_permissions_are_named_at_start(
    redis_url: str, acl_user: tuple[redis.Redis, str]
) -> None:
    admin, user = acl_user
    admin.execute_command(
        "ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", "-xadd", "-xgroup|create"
    )
    watch = OutputWatch(start_worker(APP, _as_user(redis_url, user, "pw")))
    code = watch.exit_code(timeout=15)
    out = watch.text()
    assert code == 1, out
    assert "may not run XADD, XGROUP CREATE, which jobmaster needs" in out


async def test_warnings_show_what_redis_said(
    procapp: Registry, redis_url: str, acl_user: tuple[redis.Redis, str]
) -> None:
    from tests.apps.procapp import add

    admin, user = acl_user
    admin.execute_command("ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all")
    worker = start_worker(APP, _as_user(redis_url, user, "pw"))
    watch = OutputWatch(worker)
    watch.wait_for("worker started")
    admin.execute_command("ACL", "SETUSER", user, "-evalsha")  # taken away while it runs
    await add.enqueue(1, 2)
    line = watch.wait_for("fetch failed; retrying")
    assert "no permissions to run the 'evalsha' command" in line
    worker.send_signal(signal.SIGTERM)
    assert watch.exit_code(timeout=15) == 0, watch.text()
