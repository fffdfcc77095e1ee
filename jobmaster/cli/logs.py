"""``jobmaster logs``: the log lines of a job's attempt (``-f``: followed live until the attempt
ends), or ``--grep RE`` over the log lines of a queue's recent jobs."""

from __future__ import annotations

import argparse
import json

from jobmaster.cli.application import UsageError, registry_from, run
from jobmaster.cli.arguments import APP_HELP, Commands, positive_int
from jobmaster.cli.output import print_json
from jobmaster.models import JobLogLine


def add_parser(commands: Commands) -> None:
    logs = commands.add_parser(
        "logs",
        help="a job's log lines (-f: follow them live); --grep: search a queue's recent jobs",
        description="Print the log lines of a job's attempt (the latest by default). With -f, "
        "wait for the lines a running attempt writes, until it ends (a job still waiting is "
        "followed from the start of its next attempt). With --grep RE (and --queue), search "
        "the log lines of the queue's most recent jobs instead.",
    )
    logs.add_argument("job_id", nargs="?", help="the job's id")
    logs.add_argument("-f", "--follow", action="store_true", help="follow the attempt live")
    logs.add_argument("--attempt", type=positive_int, help="the attempt's number (default: latest)")
    logs.add_argument("--queue", help="the job's queue (default: found by id); --grep: required")
    logs.add_argument("--grep", metavar="RE", help="a regular expression searched in log lines")
    logs.add_argument(
        "--limit", type=positive_int, default=50, help="--grep: recent jobs searched (default 50)"
    )
    logs.add_argument("--app", help=APP_HELP)
    logs.add_argument(
        "--json",
        action="store_true",
        help="one JSON document on stdout {job_id, lines} or {queue, pattern, lines}; with -f, "
        "one JSON object per line as the lines come",
    )
    logs.set_defaults(run=show_logs)


def show_logs(args: argparse.Namespace) -> int:
    if args.grep is not None:
        if args.job_id is not None or args.follow or args.attempt is not None:
            raise UsageError("--grep searches a queue: give --queue, not a job id, -f or --attempt")
        if args.queue is None:
            raise UsageError("--grep needs --queue")
        return search_logs(args)
    if args.job_id is None:
        raise UsageError("give a job id, or --queue Q --grep RE")
    registry = registry_from(args)

    async def action() -> int:
        lines = registry.logs(
            args.job_id, queue=args.queue, attempt=args.attempt, follow=args.follow
        )
        kept: list[JobLogLine] = []
        try:
            async for line in lines:
                if args.json and not args.follow:
                    kept.append(line)
                elif args.json:
                    print(json.dumps(line.model_dump(mode="json")), flush=True)
                else:
                    print(_text(line), flush=True)
        finally:
            await lines.aclose()
        if args.json and not args.follow:
            print_json({"job_id": args.job_id, "lines": kept})
        return 0

    return run(registry, action)


def search_logs(args: argparse.Namespace) -> int:
    registry = registry_from(args)

    async def action() -> int:
        try:
            found = await registry.search_logs(args.queue, args.grep, limit=args.limit)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if args.json:
            print_json({"queue": args.queue, "pattern": args.grep, "lines": found})
        else:
            for line in found:
                print(f"{line.job_id} #{line.attempt} {_text(line)}", flush=True)
        return 0

    return run(registry, action)


def _text(line: JobLogLine) -> str:
    """A line for people: time (UTC), level, event and its fields as key=value."""
    fields = " ".join(
        f"{key}={json.dumps(value, default=str)}" for key, value in line.fields.items()
    )
    at = line.at.strftime("%H:%M:%S.%f")[:-3]
    return f"{at} {line.level:<7} {line.event}" + (f" {fields}" if fields else "")
