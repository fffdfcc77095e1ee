"""`jobmaster dashboard` and `python -m jobmaster_dashboard`: real processes serving pages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jobmaster.embedded import free_port
from tests.conftest import ROOT

HERE = Path(__file__).resolve().parent
TOKEN = "cli-t0ken"


def environment(redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBMASTER_DASHBOARD_")}
    env.update(
        JOBMASTER_REDIS_URL=redis_url,
        PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE)]),
        **extra,
    )
    return env


def run(redis_url: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=HERE,
        env=environment(redis_url, **extra),
        capture_output=True,
        text=True,
        timeout=60,
    )


def get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@contextmanager
def serving(
    redis_url: str, *args: str, output: list[str] | None = None, **extra: str
) -> Iterator[str]:
    """The dashboard command in a process of its own, until it answers (20 s at most);
    what it printed is appended to ``output`` once it stopped."""
    port = free_port()
    command = [sys.executable, *args, "--port", str(port)]
    server = subprocess.Popen(
        command,
        cwd=HERE,
        env=environment(redis_url, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert server.poll() is None, server.communicate()[0]
            try:
                get(f"{url}/static/style.css")
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "the dashboard did not start"
                time.sleep(0.1)
        yield url
    finally:
        server.send_signal(signal.SIGINT)
        printed, _ = server.communicate(timeout=15)
        if output is not None:
            output.append(printed)
        assert server.returncode == 0, printed


def test_help_lists_the_options(redis_url: str) -> None:
    for command in (["-m", "jobmaster.cli", "dashboard"], ["-m", "jobmaster_dashboard"]):
        shown = run(redis_url, *command, "--help")
        assert shown.returncode == 0, shown.stderr
        for option in ("--host", "--port", "--read-only", "--no-auth", "--redis-url", "app"):
            assert option in shown.stdout
        assert "JOBMASTER_DASHBOARD_TOKEN" in shown.stdout
    assert "dashboard" in run(redis_url, "-m", "jobmaster.cli", "--help").stdout


def test_the_command_serves_the_application(redis_url: str) -> None:
    with serving(
        redis_url, "-m", "jobmaster.cli", "dashboard", "dashboard_cli_app:registry",
        JOBMASTER_DASHBOARD_TOKEN=TOKEN,
    ) as url:  # fmt: skip
        assert get(f"{url}/")[0] == 401
        status, page = get(f"{url}/enqueue", TOKEN)
        assert status == 200
        assert '<option value="greet">greet (queue cli)</option>' in page


def test_module_form_with_a_redis_url_read_only_and_no_auth(redis_url: str) -> None:
    args = ["-m", "jobmaster_dashboard", "--redis-url", redis_url, "--read-only", "--no-auth"]
    with serving(redis_url, *args) as url:
        status, page = get(f"{url}/")
        assert status == 200
        assert '<span class="badge">read-only</span>' in page
        assert "Log out" not in page


def test_mistakes_are_one_line_errors(redis_url: str) -> None:
    dashboard = ["-m", "jobmaster.cli", "dashboard"]
    no_credentials = run(redis_url, *dashboard)
    assert no_credentials.returncode == 2
    assert "JOBMASTER_DASHBOARD_TOKEN" in no_credentials.stderr
    assert "--no-auth" in no_credentials.stderr  # the command line's words, not Python's
    assert "auth=" not in no_credentials.stderr
    assert "Traceback" not in no_credentials.stderr
    read_only = run(redis_url, *dashboard, "--read-only")
    assert read_only.returncode == 2
    assert "JOBMASTER_DASHBOARD_READ_ONLY_TOKEN" in read_only.stderr
    both = run(redis_url, *dashboard, "dashboard_cli_app:registry", "--redis-url", redis_url)
    assert both.returncode == 2
    assert "not both" in both.stderr
    module = run(redis_url, "-m", "jobmaster_dashboard", "--no-auth", "--app", "nowhere:registry")
    assert module.returncode != 0
    assert "cannot import 'nowhere'" in module.stderr
    missing = run(
        redis_url,
        "-c",
        "import sys; sys.modules['jobmaster_dashboard'] = None; "
        "from jobmaster.cli import main; sys.exit(main(['dashboard', '--no-auth']))",
    )
    assert missing.returncode == 2
    assert "pip install jobmaster-dashboard" in missing.stderr


def test_no_auth_warns(redis_url: str) -> None:
    printed: list[str] = []
    with serving(redis_url, "-m", "jobmaster.cli", "dashboard", "--no-auth", output=printed) as url:
        assert get(f"{url}/")[0] == 200
    assert "warning: --no-auth" in printed[0]
    assert "see and change every job" in printed[0]


def test_a_read_only_dashboard_can_have_its_own_token(redis_url: str) -> None:
    tokens = {
        "JOBMASTER_DASHBOARD_TOKEN": "read-write",
        "JOBMASTER_DASHBOARD_READ_ONLY_TOKEN": "ro",
    }
    with serving(redis_url, "-m", "jobmaster_dashboard", "--read-only", **tokens) as url:
        assert get(f"{url}/", "ro")[0] == 200
        assert get(f"{url}/", "read-write")[0] == 401
    with serving(redis_url, "-m", "jobmaster_dashboard", **tokens) as url:
        assert get(f"{url}/", "read-write")[0] == 200
        assert get(f"{url}/", "ro")[0] == 401
