"""The `jobmaster` command line: enqueue, inspect, and clear errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, run_cli

APP = "apps.procapp:registry"


def test_enqueue_by_name_runs_and_waits_for_the_result(redis_url: str) -> None:
    enqueued = run_cli(redis_url, "enqueue", APP, "add", "--args", '{"a": 2, "b": 3}')
    assert enqueued.returncode == 0, enqueued.stderr
    job_id = enqueued.stdout.strip()
    assert len(job_id) == 32

    listed = run_cli(redis_url, "jobs", "list", "--state", "queued")
    assert job_id in listed.stdout

    worker = run_cli(redis_url, "worker", APP, "--burst")
    assert worker.returncode == 0, worker.stdout + worker.stderr

    shown = run_cli(redis_url, "jobs", "show", job_id)
    assert shown.returncode == 0, shown.stderr
    assert "succeeded" in shown.stdout
    assert "result: 5" in shown.stdout

    queues = run_cli(redis_url, "queues")
    assert "default" in queues.stdout


def test_enqueue_with_positional_arguments_and_options(redis_url: str) -> None:
    done = run_cli(
        redis_url, "enqueue", APP, "add", "--args", "[1, 2]", "--job-id", "mine", "--delay", "60"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "mine"
    again = run_cli(redis_url, "enqueue", APP, "add", "--args", "[1, 2]", "--job-id", "mine")
    assert "already existed" in again.stdout
    listed = run_cli(redis_url, "jobs", "list", "--state", "scheduled")
    assert "mine" in listed.stdout


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["enqueue", APP, "add", "--args", '{"a": "x", "b": 1}'], "valid integer", 1),
        (["enqueue", APP, "add", "--args", "{not json"], "--args is not valid JSON", 2),
        (["enqueue", APP, "nope"], "no job named 'nope'", 1),
        (["enqueue", "apps.missing:registry", "add"], "cannot import 'apps.missing'", 2),
        (["enqueue", "apps.procapp:nothing", "add"], "must name a jobmaster.Registry", 2),
        (["jobs", "show", "does-not-exist"], "no job with id 'does-not-exist'", 1),
        (["worker", APP, "--concurrency", "0"], "must be >= 1", 2),
    ],
)
def test_bad_input_is_explained(redis_url: str, args: list[str], message: str, code: int) -> None:
    done = run_cli(redis_url, *args)
    assert done.returncode == code, done.stdout + done.stderr
    assert message in done.stderr.replace("\n", " ")
    assert "Traceback" not in done.stderr


def test_failed_job_shows_its_traceback(redis_url: str) -> None:
    enqueued = run_cli(redis_url, "enqueue", APP, "explode", "--args", '["<b>boom</b>"]')
    job_id = enqueued.stdout.strip()
    run_cli(redis_url, "worker", APP, "--burst")
    shown = run_cli(redis_url, "jobs", "show", job_id)
    assert "failed" in shown.stdout
    assert "ValueError: <b>boom</b>" in shown.stdout
    assert "Traceback (most recent call last)" in shown.stdout
    listed = run_cli(redis_url, "jobs", "list", "--state", "failed")
    assert job_id in listed.stdout


def test_cancel_retry_and_reschedule_from_the_command_line(redis_url: str) -> None:
    job_id = run_cli(redis_url, "enqueue", APP, "add", "--args", "[1, 1]", "--delay", "60")
    job_id_text = job_id.stdout.strip()
    moved = run_cli(redis_url, "jobs", "reschedule", job_id_text, "--delay", "120")
    assert "scheduled" in moved.stdout, moved.stderr
    cancelled = run_cli(redis_url, "jobs", "cancel", job_id_text)
    assert "cancelled: it will not run" in cancelled.stdout, cancelled.stderr
    again = run_cli(redis_url, "jobs", "cancel", job_id_text)
    assert again.returncode == 1
    assert "already finished: it cancelled" in again.stderr
    retried = run_cli(redis_url, "jobs", "retry", job_id_text)
    assert "queued again" in retried.stdout, retried.stderr
    run_cli(redis_url, "worker", APP, "--burst")
    shown = run_cli(redis_url, "jobs", "show", job_id_text)
    assert "succeeded" in shown.stdout


def test_listing_commands_print_one_json_document(redis_url: str) -> None:
    job_id = run_cli(redis_url, "enqueue", APP, "add", "--args", "[2, 5]").stdout.strip()
    added = run_cli(redis_url, "schedules", "add", "nightly", "--app", APP, "--job", "add",
                    "--cron", "0 3 * * *", "--args", "[1, 1]")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert run_cli(redis_url, "worker", APP, "--burst").returncode == 0

    def document(*args: str) -> Any:
        done = run_cli(redis_url, *args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)  # the whole of stdout: one document, nothing else

    queues = document("queues")
    default = next(q for q in queues if q["queue"] == "default")
    assert default["counts"]["succeeded"] == 1
    listed = document("jobs", "list", "--state", "succeeded")
    assert (listed["queue"], listed["state"], listed["total"]) == ("default", "succeeded", 1)
    assert [job["id"] for job in listed["jobs"]] == [job_id]
    shown = document("jobs", "show", job_id)
    assert (shown["id"], shown["state"], shown["result"]) == (job_id, "succeeded", 7)
    assert shown["attempts"][0]["outcome"] == "succeeded"
    schedules = document("schedules", "list")
    assert [(s["name"], s["cron"]) for s in schedules] == [("nightly", "0 3 * * *")]


def test_the_worker_logs_json_lines_naming_the_worker_job_and_attempt(redis_url: str) -> None:
    job_id = run_cli(redis_url, "enqueue", APP, "chatty", "--args", "[0.12]").stdout.strip()
    done = run_cli(redis_url, "--log-format", "json", "worker", APP, "--burst")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert lines, done.stdout
    assert all({"event", "level", "timestamp"} <= line.keys() for line in lines)
    started = next(line for line in lines if line["event"] == "worker started")
    job_lines = [line for line in lines if line["event"] == "working"]
    assert job_lines
    for line in job_lines:
        assert (line["job_id"], line["attempt"], line["worker"]) == (job_id, 1, started["worker"])


def run_cli_without_url(default_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`jobmaster ...` with no JOBMASTER_REDIS_URL. The default Redis is the test's own
    server (set in the child before anything is read): the machine's Redis on 6379 must
    never be touched by a test."""
    env = {k: v for k, v in os.environ.items() if k != "JOBMASTER_REDIS_URL"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    env["COLUMNS"] = "250"
    code = (
        "import sys, jobmaster.settings as s; s.DEFAULT_REDIS_URL = sys.argv[1]; "
        "from jobmaster.cli import main; raise SystemExit(main(sys.argv[2:]))"
    )
    return subprocess.run(
        [sys.executable, "-c", code, default_url, *args],
        cwd=ROOT / "tests",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["queues"],
        ["workers"],
        ["jobs", "list", "--state", "queued"],
        ["jobs", "list", "--app", APP, "--state", "queued"],  # an app without a URL of its own
        ["enqueue", APP, "add", "--args", "[1, 2]"],
    ],
    ids=["queues", "workers", "jobs", "jobs-app", "enqueue"],
)
def test_commands_say_which_redis_they_fell_back_to(redis_url: str, args: list[str]) -> None:
    done = run_cli_without_url(redis_url, *args)
    assert done.returncode == 0, done.stderr
    assert "JOBMASTER_REDIS_URL is not set" in done.stderr
    assert f"default Redis, {redis_url} (namespace 'jobmaster')" in done.stderr
    named = run_cli(redis_url, *args)  # named by the variable: nothing to say
    assert named.returncode == 0, named.stderr
    assert "JOBMASTER_REDIS_URL" not in named.stderr


def run_python(
    code: str, *args: str, path: Sequence[Path] = ()
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, [ROOT, *path])), "COLUMNS": "250"}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_another_package_adds_a_command_through_an_entry_point(tmp_path: Path) -> None:
    (tmp_path / "hello_plugin.py").write_text(
        "def add(commands):\n"
        "    parser = commands.add_parser('hello', help='say hello')\n"
        "    parser.add_argument('who')\n"
        "    parser.set_defaults(run=lambda args: print(f'hello {args.who}') or 0)\n"
    )
    dist = tmp_path / "hello_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hello-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[jobmaster.commands]\nhello = hello_plugin:add\n")
    main = "import sys; from jobmaster.cli import main; sys.exit(main(sys.argv[1:]))"
    assert "say hello" in run_python(main, "--help", path=[tmp_path]).stdout
    said = run_python(main, "hello", "world", path=[tmp_path])
    assert said.returncode == 0, said.stderr
    assert said.stdout == "hello world\n"
    # a built-in command does not import the packages that add commands
    parsed = run_python(
        "import sys; from jobmaster.cli import build_parser; "
        "build_parser(['--log-level', 'debug', 'worker', 'app:registry']); "
        "print(sorted({'hello_plugin', 'jobmaster_dashboard'} & set(sys.modules)))",
        path=[tmp_path],
    )
    assert parsed.stdout == "[]\n", parsed.stderr


def test_the_dashboard_command_says_what_to_install_when_it_is_missing() -> None:
    without_dashboard = (
        "import sys, importlib.metadata as m; everything = m.entry_points; "
        "m.entry_points = lambda **kw: [e for e in everything(**kw) if e.name != 'dashboard']; "
        "from jobmaster.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    listed = run_python(without_dashboard, "--help")
    assert "serve the web dashboard (pip install jobmaster-dashboard)" in listed.stdout
    for args in (["dashboard", "--port", "-1"], ["dashboard", "app:registry", "--help"]):
        missing = run_python(without_dashboard, *args)
        assert missing.returncode == 2
        assert "jobmaster-dashboard, which is not installed" in missing.stderr.replace("\n", " ")
        assert "Traceback" not in missing.stderr
