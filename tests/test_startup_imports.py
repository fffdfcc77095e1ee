"""What a worker imports on its way to its first job. The command and the worker runtime
leave out the modules that only some workers need, so that a worker starts fast; checked in
fresh interpreters through ``sys.modules`` (a real worker process for what it imports while
it runs)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

from jobmaster import Registry
from tests.conftest import PROCAPP, ROOT

NEEDED_LATER = {
    "croniter": "cron schedules, read by the scheduler",
    "jobmaster.scheduler": "schedules, which a burst worker does not run",
    "prometheus_client": "--metrics-port",
    "jobmaster.ops.metrics": "--metrics-port",
    "psutil": "telemetry, from the first heartbeat on, and --max-memory",
    "urllib.request": "webhook deliveries",
    "http.client": "webhook deliveries",
    "ctypes": "the parent-death signal of a worker under a supervisor",
    "jobmaster.worker.supervisor": "--processes N",
    "jobmaster_dashboard": "jobmaster dashboard",
}
"""Modules that a worker imports only once it needs them, and what needs them. rich is not
one of them: structlog imports it (its console renderer formats tracebacks with rich where
it is installed), so every process that logs has it."""


DEPENDENCIES = ("redis", "redis.asyncio", "pydantic", "structlog", "msgpack")
"""What a worker needs before its first job anyway. Whatever of NEEDED_LATER they import
by themselves is not jobmaster's doing: redis-py imports the OpenTelemetry SDK where it is
installed (as in jobmaster's development environment), and the SDK imports psutil."""


def imported_by(code: str, *, env: dict[str, str] | None = None) -> list[str]:
    """The modules of NEEDED_LATER that a fresh interpreter imported by the time ``code``
    ended (it may call ``sys.exit``), less those that DEPENDENCIES import."""
    script = (
        f"import atexit, sys, {', '.join(DEPENDENCIES)}\n"
        "before = set(sys.modules)\n"
        f"atexit.register(lambda: print('imported:', sorted(set({list(NEEDED_LATER)!r}) "
        "& set(sys.modules) - before)))\n"
        f"{code}\n"
    )
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
        **(env or {}),
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT / "tests",
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("imported: ")]
    assert len(lines) == 1, done.stdout + done.stderr
    found: list[str] = ast.literal_eval(lines[0].removeprefix("imported: "))
    return found


def test_the_worker_command_and_runtime_import_none_of_them() -> None:
    # what `jobmaster worker` imports before it starts: the parser, the worker runtime,
    # the application, and a Worker made from its registry
    code = (
        "from jobmaster.cli import build_parser\n"
        f"argv = ['worker', {PROCAPP!r}]\n"
        "args = build_parser(argv).parse_args(argv)\n"
        "from jobmaster.worker import Worker\n"
        "from jobmaster.worker.recycling import RECYCLED_EXIT_CODE\n"
        "from jobmaster.cli.application import load_registry\n"
        "Worker(load_registry(args.app), burst=True)\n"
    )
    assert imported_by(code) == []


async def test_a_burst_worker_runs_a_job_without_them(procapp: Registry, redis_url: str) -> None:
    from tests.apps.procapp import add

    handle = await add.enqueue(1, 2)
    code = (
        "from jobmaster.cli import main\n"
        f"sys.exit(main(['--log-level', 'warning', 'worker', {PROCAPP!r}, '--burst']))\n"
    )
    imported = imported_by(code, env={"JOBMASTER_REDIS_URL": redis_url})
    assert await handle.result(timeout=5) == 3
    # psutil comes with the first heartbeat, which lists the worker with its telemetry
    assert [name for name in imported if name != "psutil"] == []
