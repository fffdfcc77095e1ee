"""The ``jobmaster`` command: run workers, enqueue jobs and inspect them."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any

import structlog
from rich.console import Console
from rich.table import Table

from jobmaster import event_loop
from jobmaster.errors import JobmasterError
from jobmaster.models import CancelOutcome, Job, JobState, Schedule
from jobmaster.registry import Registry
from jobmaster.settings import ENV_PREFIX

console = Console()
err_console = Console(stderr=True)


class UsageError(Exception):
    """A command-line mistake, reported as one line and exit status 2."""


def load_registry(spec: str) -> Registry:
    """Import ``module:attribute`` (or ``module``, using its ``registry``) as a Registry."""
    module_name, _, attribute = spec.partition(":")
    attribute = attribute or "registry"
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise UsageError(
                f"cannot import {module_name!r} (from {spec!r}); run from the directory that "
                f"contains it or add that directory to PYTHONPATH"
            ) from None
        raise
    registry = getattr(module, attribute, None)
    if not isinstance(registry, Registry):
        found = type(registry).__name__ if registry is not None else "nothing"
        raise UsageError(f"{spec!r} must name a jobmaster.Registry, found {found}")
    return registry


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 seconds, got {value}")
    return value


def _size(text: str) -> int:
    from jobmaster.worker.recycling import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _queues(text: str) -> list[str]:
    names = [q.strip() for q in text.split(",") if q.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one queue name")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jobmaster", description=__doc__)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    commands = parser.add_subparsers(dest="command", required=True)

    worker = commands.add_parser("worker", help="run a worker process")
    worker.add_argument("app", help="module:registry of the application")
    worker.add_argument("--queues", type=_queues, help="comma-separated, highest priority first")
    worker.add_argument("--concurrency", type=_positive_int, default=100)
    worker.add_argument("--burst", action="store_true", help="exit when nothing is left")
    worker.add_argument("--lease", type=_seconds, help="lease length in seconds")
    worker.add_argument(
        "--heartbeat", type=_seconds, help="seconds between lease renewals (default lease/3)"
    )
    worker.add_argument("--grace", type=_seconds, default=30.0, help="shutdown grace period")
    worker.add_argument(
        "--processes", type=_positive_int, default=1, help="worker processes under a supervisor"
    )
    worker.add_argument(
        "--max-jobs",
        type=_positive_int,
        help="recycle a worker process after it started N jobs (it finishes them and exits; "
        "the supervisor starts a new one)",
    )
    worker.add_argument(
        "--max-memory",
        type=_size,
        metavar="SIZE",
        help="recycle a worker process once its memory (RSS) passes SIZE, e.g. 512M or 2G",
    )
    # set by the supervisor in its children's command lines: its own pid
    worker.add_argument("--supervisor-pid", type=_positive_int, help=argparse.SUPPRESS)
    worker.add_argument(
        "--loop",
        choices=event_loop.LOOPS,
        default="auto",
        help="event loop: uvloop where installed (auto, the default), or asyncio's own",
    )
    worker.set_defaults(run=_worker)

    enqueue = commands.add_parser("enqueue", help="enqueue a job by name")
    enqueue.add_argument("app", help="module:registry of the application")
    enqueue.add_argument("name", help="the job's name")
    enqueue.add_argument("--args", default="{}", help="JSON object (keywords) or array")
    enqueue.add_argument("--delay", type=_seconds)
    enqueue.add_argument("--priority", type=int)
    enqueue.add_argument("--job-id")
    enqueue.add_argument("--queue")
    enqueue.add_argument("--wait", type=_seconds, help="wait this long for the result")
    enqueue.set_defaults(run=_enqueue)

    jobs = commands.add_parser("jobs", help="list and show jobs")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True)
    listing = jobs_commands.add_parser("list", help="jobs of a queue in a state, newest first")
    listing.add_argument("--app", help="module:registry (default: settings from JOBMASTER_*)")
    listing.add_argument("--queue", default="default")
    listing.add_argument("--state", default="failed", choices=[s.value for s in JobState])
    listing.add_argument("--limit", type=_positive_int, default=20)
    listing.add_argument("--offset", type=int, default=0)
    listing.set_defaults(run=_jobs_list)
    show = jobs_commands.add_parser("show", help="a job with every attempt and its logs")
    show.add_argument("job_id")
    show.add_argument("--app", help="module:registry (default: settings from JOBMASTER_*)")
    show.set_defaults(run=_jobs_show)
    cancel = jobs_commands.add_parser("cancel", help="cancel a waiting or running job")
    cancel.add_argument("job_id")
    cancel.add_argument("--app", help="module:registry (default: settings from JOBMASTER_*)")
    cancel.set_defaults(run=_jobs_cancel)
    retry = jobs_commands.add_parser("retry", help="run a failed or cancelled job again")
    retry.add_argument("job_id")
    retry.add_argument("--app", help="module:registry (default: settings from JOBMASTER_*)")
    retry.set_defaults(run=_jobs_retry)
    move = jobs_commands.add_parser("reschedule", help="move a waiting job to another time")
    move.add_argument("job_id")
    move.add_argument("--delay", type=_seconds, default=0.0, help="seconds from now (0: now)")
    move.add_argument("--app", help="module:registry (default: settings from JOBMASTER_*)")
    move.set_defaults(run=_jobs_reschedule)

    queues = commands.add_parser("queues", help="jobs per state in every queue")
    queues.add_argument("--app", help="module:registry (default: settings from JOBMASTER_*)")
    queues.set_defaults(run=_queues_command)

    workers = commands.add_parser("workers", help="live workers")
    workers.add_argument("--app", help="module:registry (default: settings from JOBMASTER_*)")
    workers.set_defaults(run=_workers_command)
    _add_schedules_parser(commands)

    dashboard = commands.add_parser(
        "dashboard", help="serve the web dashboard", description=DASHBOARD_HELP
    )
    add_dashboard_arguments(dashboard)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = getattr(logging, args.log_level.upper())
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(level))
    try:
        code: int = args.run(args)
    except (UsageError, JobmasterError) as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        return 2 if isinstance(exc, UsageError) else 1
    return code


def _registry(args: argparse.Namespace) -> Registry:
    return _say_which_redis(load_registry(args.app) if getattr(args, "app", None) else Registry())


def _say_which_redis(registry: Registry) -> Registry:
    """Say on stderr which Redis a command uses when nothing named one (no variable, no
    URL in the application), so that nobody reads another application's Redis unawares."""
    settings = registry.settings
    if "redis_url" not in settings.model_fields_set:
        err_console.print(
            f"note: {ENV_PREFIX}REDIS_URL is not set, so this uses the default Redis, "
            f"{settings.redis_url} (namespace {settings.namespace!r})",
            highlight=False,
            markup=False,
        )
    return registry


def _run(registry: Registry, action: Callable[[], Coroutine[Any, Any, int]]) -> int:
    async def with_cleanup() -> int:
        try:
            return await action()
        finally:
            await registry.aclose()

    return asyncio.run(with_cleanup())


# -- commands ------------------------------------------------------------------------------


def _worker(args: argparse.Namespace) -> int:
    # The worker runtime is imported by this command only, not by the others.
    from jobmaster.worker import Worker
    from jobmaster.worker.recycling import RECYCLED_EXIT_CODE
    from jobmaster.worker.supervisor import Supervisor

    registry = _say_which_redis(load_registry(args.app))  # fails here if it cannot be imported
    if args.processes > 1:
        return Supervisor(_child_arguments(args), args.processes, burst=args.burst).run()
    worker = Worker(
        registry,
        queues=args.queues,
        concurrency=args.concurrency,
        burst=args.burst,
        lease=args.lease,
        heartbeat=args.heartbeat,
        grace=args.grace,
        supervisor=args.supervisor_pid,
        max_jobs=args.max_jobs,
        max_memory=args.max_memory,
    )
    event_loop.run(worker.run(), args.loop)
    # a recycled worker tells its supervisor to start a new one; alone, it just ends
    code = RECYCLED_EXIT_CODE if worker.recycled and args.supervisor_pid else 0
    sys.stdout.flush()
    sys.stderr.flush()
    if any(t.name.startswith("jobmaster-sync") and t.is_alive() for t in threading.enumerate()):
        # A sync handler that ignored ctx.cancelled still runs in a thread; its job was
        # handed back already, so the process ends without waiting for it.
        os._exit(code)
    return code


def _child_arguments(args: argparse.Namespace) -> list[str]:
    """The worker command line of one supervised process."""
    child = ["--log-level", args.log_level, "worker", args.app]
    child += ["--concurrency", str(args.concurrency), "--grace", str(args.grace)]
    child += ["--loop", args.loop]
    if args.queues:
        child += ["--queues", ",".join(args.queues)]
    if args.lease is not None:
        child += ["--lease", str(args.lease)]
    if args.heartbeat is not None:
        child += ["--heartbeat", str(args.heartbeat)]
    if args.max_jobs is not None:
        child += ["--max-jobs", str(args.max_jobs)]
    if args.max_memory is not None:
        child += ["--max-memory", str(args.max_memory)]
    if args.burst:
        child.append("--burst")
    return child


def _enqueue(args: argparse.Namespace) -> int:
    registry = _say_which_redis(load_registry(args.app))
    try:
        arguments = json.loads(args.args)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--args is not valid JSON: {exc}") from None
    options = {
        k: v
        for k, v in {
            "delay": args.delay,
            "priority": args.priority,
            "job_id": args.job_id,
            "queue": args.queue,
        }.items()
        if v is not None
    }

    async def action() -> int:
        handle = await registry.enqueue(args.name, arguments, **options)
        note = "" if handle.created else " (a job with this id already existed)"
        console.print(f"{handle.id}{note}", highlight=False)
        if args.wait is not None:
            result = await handle.result(timeout=args.wait)
            console.print_json(json.dumps(result, default=str))
        return 0

    return _run(registry, action)


def _jobs_list(args: argparse.Namespace) -> int:
    registry = _registry(args)

    async def action() -> int:
        state = JobState(args.state)
        jobs = await registry.list_jobs(args.queue, state, offset=args.offset, limit=args.limit)
        counts = await registry.count_jobs(args.queue)
        table = Table(title=f"{args.queue}: {counts[state]} {state.value}")
        for column in ("id", "name", "priority", "created", "attempts", "error"):
            table.add_column(column)
        for job in jobs:
            error = f"{job.error.type}: {job.error.message}" if job.error else ""
            table.add_row(
                job.id,
                job.name,
                str(job.priority),
                job.created_at.isoformat(timespec="seconds"),
                str(job.attempts),
                error[:80],
            )
        console.print(table)
        return 0

    return _run(registry, action)


def _jobs_show(args: argparse.Namespace) -> int:
    registry = _registry(args)

    async def action() -> int:
        render_job(await registry.get_job(args.job_id))
        return 0

    return _run(registry, action)


def _jobs_cancel(args: argparse.Namespace) -> int:
    registry = _registry(args)

    async def action() -> int:
        outcome = await (await registry.find(args.job_id)).cancel()
        if outcome is CancelOutcome.CANCELLED:
            console.print(f"{args.job_id} cancelled: it will not run", highlight=False)
        else:
            console.print(f"{args.job_id} is running: its worker was told to stop it")
        return 0

    return _run(registry, action)


def _jobs_retry(args: argparse.Namespace) -> int:
    registry = _registry(args)

    async def action() -> int:
        state = await (await registry.find(args.job_id)).retry()
        console.print(f"{args.job_id} is {state.value} again", highlight=False)
        return 0

    return _run(registry, action)


def _jobs_reschedule(args: argparse.Namespace) -> int:
    registry = _registry(args)

    async def action() -> int:
        state = await (await registry.find(args.job_id)).reschedule(delay=args.delay)
        console.print(f"{args.job_id} is {state.value}", highlight=False)
        return 0

    return _run(registry, action)


def render_job(job: Job) -> None:
    """Print a job and a table of its attempts (with errors and log lines)."""
    console.print(
        f"[bold]{job.id}[/bold] {job.name} on {job.queue}: [bold]{job.state.value}[/bold]",
        highlight=False,
    )
    console.print(f"arguments: {json.dumps(job.arguments, default=str)}", highlight=False)
    if job.state is JobState.SUCCEEDED:
        console.print(f"result: {json.dumps(job.result, default=str)}", highlight=False)
    if job.error:
        console.print(f"error: {job.error.type}: {job.error.message}", highlight=False)
    table = Table(title="attempts")
    for column in ("#", "worker", "host/pid", "started", "finished", "outcome", "error", "logs"):
        table.add_column(column)
    for a in job.attempts:
        table.add_row(
            str(a.number),
            a.worker_id,
            f"{a.hostname}/{a.pid}",
            a.started_at.isoformat(timespec="milliseconds"),
            a.finished_at.isoformat(timespec="milliseconds") if a.finished_at else "",
            a.outcome.value if a.outcome else "running",
            f"{a.error.type}: {a.error.message}" if a.error else "",
            "\n".join(f"{line.level} {line.event} {line.fields or ''}" for line in a.logs),
        )
    console.print(table)
    last = next((a for a in reversed(job.attempts) if a.error and a.error.traceback), None)
    if last is not None and last.error is not None and last.error.traceback:
        console.print(f"traceback of attempt {last.number}:", highlight=False)
        console.print(last.error.traceback.rstrip(), highlight=False, markup=False)


def _queues_command(args: argparse.Namespace) -> int:
    registry = _registry(args)

    async def action() -> int:
        names = sorted(set(await registry.known_queues()) | set(registry.queues()))
        states = [s for s in JobState if s is not JobState.BLOCKED]
        table = Table(title="queues")
        table.add_column("queue")
        for state in states:
            table.add_column(state.value, justify="right")
        for name in names:
            counts = await registry.count_jobs(name)
            table.add_row(name, *(str(counts[s]) for s in states))
        console.print(table)
        return 0

    return _run(registry, action)


def _workers_command(args: argparse.Namespace) -> int:
    registry = _registry(args)

    async def action() -> int:
        table = Table(title="live workers")
        for column in ("id", "host", "pid", "queues", "busy", "done", "last seen"):
            table.add_column(column)
        for w in await registry.workers():
            table.add_row(
                w.id,
                w.hostname,
                str(w.pid),
                ",".join(w.queues),
                f"{w.busy}/{w.concurrency}",
                str(w.jobs_done),
                f"{w.last_seen:.0f}",
            )
        console.print(table)
        return 0

    return _run(registry, action)


# -- dashboard -----------------------------------------------------------------------------

DASHBOARD_HELP = (
    "Serve the web dashboard (the jobmaster-dashboard package) with uvicorn. Credentials "
    "come from JOBMASTER_DASHBOARD_TOKEN, or JOBMASTER_DASHBOARD_USER and "
    "JOBMASTER_DASHBOARD_PASSWORD, unless --no-auth (a --read-only dashboard takes "
    "JOBMASTER_DASHBOARD_READ_ONLY_TOKEN, _USER and _PASSWORD instead when set)."
)


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number (0..65535), got {value}")
    return value


def add_dashboard_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``jobmaster dashboard`` (and of ``python -m jobmaster_dashboard``)."""
    parser.add_argument(
        "app",
        nargs="?",
        help="module:registry of the application: its job names make the enqueue and "
        "schedule forms work (default: the Redis of JOBMASTER_REDIS_URL, no job names)",
    )
    parser.add_argument("--app", dest="app_option", metavar="APP", help="the same, as an option")
    parser.add_argument("--redis-url", help="the Redis to show, instead of an application's")
    parser.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    parser.add_argument("--port", type=_port, default=8000, help="default: 8000")
    parser.add_argument("--read-only", action="store_true", help="hide and refuse every action")
    parser.add_argument("--root-path", default="", help="the path prefix behind a proxy")
    parser.add_argument(
        "--no-auth", action="store_true", help="serve without authentication (trusted networks)"
    )
    parser.set_defaults(run=run_dashboard)


def run_dashboard(args: argparse.Namespace) -> int:
    """Serve the dashboard until SIGINT or SIGTERM (imports the dashboard package here)."""
    try:
        from jobmaster_dashboard import AuthError
        from jobmaster_dashboard.serve import build_app, serve
    except ImportError as exc:
        raise UsageError(
            f"the dashboard is not installed ({exc}): pip install jobmaster-dashboard"
        ) from None
    if args.app and args.app_option:
        raise UsageError("give the application once: APP or --app APP")
    spec = args.app or args.app_option
    if spec and args.redis_url:
        raise UsageError("give the application (module:registry) or --redis-url, not both")
    target: Registry | str = (
        _say_which_redis(load_registry(spec))
        if spec
        else args.redis_url or _say_which_redis(Registry())
    )
    try:
        app = build_app(
            target,
            read_only=args.read_only,
            root_path=args.root_path,
            authenticate=not args.no_auth,
        )
    except AuthError as exc:
        raise UsageError(str(exc)) from None
    serve(app, args.host, args.port)
    return 0


# -- schedules -----------------------------------------------------------------------------


def _add_schedules_parser(commands: Any) -> None:
    app_help = "module:registry (default: settings from JOBMASTER_*)"
    schedules = commands.add_parser("schedules", help="list, add, pause, run and delete schedules")
    actions = schedules.add_subparsers(dest="schedules_command", required=True)
    listing = actions.add_parser("list", help="every schedule, with its next run and last job")
    listing.add_argument("--app", help=app_help)
    listing.set_defaults(run=_schedules_list)

    add = actions.add_parser("add", help="create a schedule (workers pick it up at once)")
    add.add_argument("name", help="the schedule's name")
    add.add_argument("--app", required=True, help="module:registry that defines the job")
    add.add_argument("--job", required=True, help="the job's name")
    when = add.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help="cron expression: 5 fields, or 6 with seconds last")
    when.add_argument("--every", type=_seconds, help="interval in seconds (>= 1)")
    add.add_argument("--args", help="the job's arguments: JSON object (keywords) or array")
    add.add_argument("--tz", default="UTC", help="IANA timezone of the cron expression")
    add.add_argument("--catch-up", choices=["skip", "latest", "all"], default="latest")
    add.add_argument("--catch-up-limit", type=_positive_int, default=100)
    add.add_argument("--queue", help="another queue than the job's")
    add.set_defaults(run=_schedules_add)

    for name, text in (
        ("pause", "stop a schedule's ticks"),
        ("resume", "resume a paused schedule from its next tick"),
        ("trigger", "run a schedule's job now (the next tick does not move)"),
        ("delete", "delete a schedule"),
    ):
        command = actions.add_parser(name, help=text)
        command.add_argument("name", help="the schedule's name")
        command.add_argument("--app", help=app_help)
        command.set_defaults(run=_schedule_action)


def _schedules_list(args: argparse.Namespace) -> int:
    registry = _registry(args)

    async def action() -> int:
        render_schedules(await registry.schedules())
        return 0

    return _run(registry, action)


def _schedules_add(args: argparse.Namespace) -> int:
    registry = load_registry(args.app)
    try:
        arguments = json.loads(args.args) if args.args is not None else None
    except json.JSONDecodeError as exc:
        raise UsageError(f"--args is not valid JSON: {exc}") from None

    async def action() -> int:
        schedule = await registry.add_schedule(
            args.name, args.job, cron=args.cron, every=args.every, args=arguments, tz=args.tz,
            catch_up=args.catch_up, catch_up_limit=args.catch_up_limit, queue=args.queue,
        )  # fmt: skip
        render_schedules([schedule], title="schedule added")
        return 0

    return _run(registry, action)


def _schedule_action(args: argparse.Namespace) -> int:
    registry = _registry(args)
    name, command = args.name, args.schedules_command

    async def action() -> int:
        if command == "trigger":
            handle = await registry.trigger_schedule(name)
            console.print(f"{handle.id}", highlight=False)
        elif command == "delete":
            await registry.delete_schedule(name)
            console.print(f"deleted schedule {name}", highlight=False)
        else:
            change = registry.pause_schedule if command == "pause" else registry.resume_schedule
            render_schedules([await change(name)], title=f"schedule {command}d")
        return 0

    return _run(registry, action)


def render_schedules(schedules: Sequence[Schedule], title: str = "schedules") -> None:
    """Print schedules as a table: timing, next run, last run and its job."""
    table = Table(title=title)
    for column in ("name", "job", "queue", "when", "catch-up", "next run", "last run", "last job"):
        table.add_column(column)
    for s in schedules:
        when = f"cron {s.cron}" if s.cron is not None else f"every {s.every:g}s"
        if s.cron is not None and s.tz != "UTC":
            when += f" ({s.tz})"
        catch_up = f"all (<= {s.catch_up_limit})" if s.catch_up == "all" else s.catch_up
        last_job = s.last_job_id or ""
        if s.last_job_id:
            last_job += f" ({s.last_job_state.value if s.last_job_state else 'gone'})"
        table.add_row(
            s.name + (" [code]" if s.source == "code" else ""),
            s.job,
            s.queue,
            when,
            catch_up,
            "paused" if s.paused else _time(s.next_run_at),
            _time(s.last_run_at),
            last_job,
        )
    console.print(table)


def _time(when: datetime | None) -> str:
    return when.isoformat(timespec="seconds") if when is not None else ""


if __name__ == "__main__":
    sys.exit(main())
