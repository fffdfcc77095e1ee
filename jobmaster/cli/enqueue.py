"""``jobmaster enqueue``: enqueue a job by name, and optionally wait for its result."""

from __future__ import annotations

import argparse
import json

from jobmaster.cli.application import UsageError, load_registry, run, say_which_redis
from jobmaster.cli.arguments import Commands, seconds
from jobmaster.cli.output import console


def add_parser(commands: Commands) -> None:
    enqueue = commands.add_parser("enqueue", help="enqueue a job by name")
    enqueue.add_argument("app", help="module:registry of the application")
    enqueue.add_argument("name", help="the job's name")
    enqueue.add_argument("--args", default="{}", help="JSON object (keywords) or array")
    enqueue.add_argument("--delay", type=seconds)
    enqueue.add_argument("--priority", type=int)
    enqueue.add_argument("--job-id")
    enqueue.add_argument("--queue")
    enqueue.add_argument(
        "--after",
        action="append",
        metavar="JOB_ID",
        help="a job that must succeed before this one runs (repeatable)",
    )
    enqueue.add_argument(
        "--after-any",
        action="append",
        metavar="JOB_ID",
        help="a job that must end, in any final state, before this one runs (repeatable)",
    )
    enqueue.add_argument("--wait", type=seconds, help="wait this long for the result")
    enqueue.set_defaults(run=run_enqueue)


def run_enqueue(args: argparse.Namespace) -> int:
    registry = say_which_redis(load_registry(args.app))
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
            "after": args.after,
            "after_any": args.after_any,
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

    return run(registry, action)
