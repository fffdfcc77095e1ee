"""``jobmaster jobs``: list and show jobs (with the jobs they wait on or for); cancel, retry
and reschedule one."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from jobmaster.cli.application import registry_from, run
from jobmaster.cli.arguments import APP_HELP, Commands, positive_int, seconds
from jobmaster.cli.output import JSON_HELP, console, print_json
from jobmaster.cli.relations import ShownRelations, read_relations, render_relations
from jobmaster.models import CancelOutcome, Job, JobState


def add_parser(commands: Commands) -> None:
    jobs = commands.add_parser("jobs", help="list and show jobs")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True)
    listing = jobs_commands.add_parser("list", help="jobs of a queue in a state, newest first")
    listing.add_argument("--app", help=APP_HELP)
    listing.add_argument("--queue", default="default")
    listing.add_argument("--state", default="failed", choices=[s.value for s in JobState])
    listing.add_argument("--limit", type=positive_int, default=20)
    listing.add_argument("--offset", type=int, default=0)
    listing.add_argument("--json", action="store_true", help=JSON_HELP)
    listing.set_defaults(run=list_jobs)
    show = jobs_commands.add_parser(
        "show", help="a job with every attempt and its logs, and the jobs it waits on or for"
    )
    show.add_argument("job_id")
    show.add_argument("--queue", help="the job's queue (default: looked for in every queue)")
    show.add_argument("--app", help=APP_HELP)
    show.add_argument("--json", action="store_true", help=JSON_HELP)
    show.set_defaults(run=show_job)
    cancel = jobs_commands.add_parser("cancel", help="cancel a waiting or running job")
    cancel.add_argument("job_id")
    cancel.add_argument("--app", help=APP_HELP)
    cancel.set_defaults(run=cancel_job)
    retry = jobs_commands.add_parser("retry", help="run a failed or cancelled job again")
    retry.add_argument("job_id")
    retry.add_argument("--app", help=APP_HELP)
    retry.set_defaults(run=retry_job)
    move = jobs_commands.add_parser("reschedule", help="move a waiting job to another time")
    move.add_argument("job_id")
    move.add_argument("--delay", type=seconds, default=0.0, help="seconds from now (0: now)")
    move.add_argument("--app", help=APP_HELP)
    move.set_defaults(run=reschedule_job)


def list_jobs(args: argparse.Namespace) -> int:
    registry = registry_from(args)

    async def action() -> int:
        state = JobState(args.state)
        jobs = await registry.list_jobs(args.queue, state, offset=args.offset, limit=args.limit)
        counts = await registry.count_jobs(args.queue)
        if args.json:
            print_json(
                {"queue": args.queue, "state": state.value, "total": counts[state], "jobs": jobs}
            )
            return 0
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

    return run(registry, action)


def show_job(args: argparse.Namespace) -> int:
    registry = registry_from(args)

    async def action() -> int:
        job = await registry.get_job(args.job_id, args.queue)
        relations = await read_relations(registry, job)
        if args.json:
            print_json({**job.model_dump(mode="json"), **relations.document()})
        else:
            render_job(job, relations)
        return 0

    return run(registry, action)


def cancel_job(args: argparse.Namespace) -> int:
    registry = registry_from(args)

    async def action() -> int:
        outcome = await (await registry.find(args.job_id)).cancel()
        if outcome is CancelOutcome.CANCELLED:
            console.print(f"{args.job_id} cancelled: it will not run", highlight=False)
        else:
            console.print(f"{args.job_id} is running: its worker was told to stop it")
        return 0

    return run(registry, action)


def retry_job(args: argparse.Namespace) -> int:
    registry = registry_from(args)

    async def action() -> int:
        state = await (await registry.find(args.job_id)).retry()
        console.print(f"{args.job_id} is {state.value} again", highlight=False)
        return 0

    return run(registry, action)


def reschedule_job(args: argparse.Namespace) -> int:
    registry = registry_from(args)

    async def action() -> int:
        state = await (await registry.find(args.job_id)).reschedule(delay=args.delay)
        console.print(f"{args.job_id} is {state.value}", highlight=False)
        return 0

    return run(registry, action)


def render_job(job: Job, relations: ShownRelations | None = None) -> None:
    """Print a job, its relations and a table of its attempts (with errors and log
    lines)."""
    console.print(
        f"[bold]{job.id}[/bold] {job.name} on {job.queue}: [bold]{job.state.value}[/bold]",
        highlight=False,
    )
    console.print(f"arguments: {json.dumps(job.arguments, default=str)}", highlight=False)
    if job.state is JobState.SUCCEEDED:
        console.print(f"result: {json.dumps(job.result, default=str)}", highlight=False)
    if job.error:
        console.print(f"error: {job.error.type}: {job.error.message}", highlight=False)
    if relations is not None:
        render_relations(job, relations)
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
