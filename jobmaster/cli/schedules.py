"""``jobmaster schedules``: list, add, pause, resume, trigger and delete schedules."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import datetime

from rich.table import Table

from jobmaster.cli.application import UsageError, load_registry, registry_from, run
from jobmaster.cli.arguments import APP_HELP, Commands, positive_int, seconds
from jobmaster.cli.output import JSON_HELP, console, print_json
from jobmaster.models import Schedule


def add_parser(commands: Commands) -> None:
    schedules = commands.add_parser("schedules", help="list, add, pause, run and delete schedules")
    actions = schedules.add_subparsers(dest="schedules_command", required=True)
    listing = actions.add_parser("list", help="every schedule, with its next run and last job")
    listing.add_argument("--app", help=APP_HELP)
    listing.add_argument("--json", action="store_true", help=JSON_HELP)
    listing.set_defaults(run=list_schedules)

    add = actions.add_parser("add", help="create a schedule (workers pick it up at once)")
    add.add_argument("name", help="the schedule's name")
    add.add_argument("--app", required=True, help="module:registry that defines the job")
    add.add_argument("--job", required=True, help="the job's name")
    when = add.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help="cron expression: 5 fields, or 6 with seconds last")
    when.add_argument("--every", type=seconds, help="interval in seconds (>= 1)")
    add.add_argument("--args", help="the job's arguments: JSON object (keywords) or array")
    add.add_argument("--tz", default="UTC", help="IANA timezone of the cron expression")
    add.add_argument("--catch-up", choices=["skip", "latest", "all"], default="latest")
    add.add_argument("--catch-up-limit", type=positive_int, default=100)
    add.add_argument("--queue", help="another queue than the job's")
    add.set_defaults(run=add_schedule)

    for name, text in (
        ("pause", "stop a schedule's ticks"),
        ("resume", "resume a paused schedule from its next tick"),
        ("trigger", "run a schedule's job now (the next tick does not move)"),
        ("delete", "delete a schedule"),
    ):
        command = actions.add_parser(name, help=text)
        command.add_argument("name", help="the schedule's name")
        command.add_argument("--app", help=APP_HELP)
        command.set_defaults(run=change_schedule)


def list_schedules(args: argparse.Namespace) -> int:
    registry = registry_from(args)

    async def action() -> int:
        schedules = await registry.schedules()
        if args.json:
            print_json(schedules)
        else:
            render_schedules(schedules)
        return 0

    return run(registry, action)


def add_schedule(args: argparse.Namespace) -> int:
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

    return run(registry, action)


def change_schedule(args: argparse.Namespace) -> int:
    registry = registry_from(args)
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

    return run(registry, action)


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
