"""``jobmaster queues``: jobs per state in every queue."""

from __future__ import annotations

import argparse

from rich.table import Table

from jobmaster.cli.application import registry_from, run
from jobmaster.cli.arguments import APP_HELP, Commands
from jobmaster.cli.output import JSON_HELP, console, print_json
from jobmaster.models import JobState


def add_parser(commands: Commands) -> None:
    queues = commands.add_parser("queues", help="jobs per state in every queue")
    queues.add_argument("--app", help=APP_HELP)
    queues.add_argument("--json", action="store_true", help=JSON_HELP)
    queues.set_defaults(run=show_queues)


def show_queues(args: argparse.Namespace) -> int:
    registry = registry_from(args)

    async def action() -> int:
        names = sorted(set(await registry.known_queues()) | set(registry.queues()))
        states = [s for s in JobState if s is not JobState.BLOCKED]
        if args.json:
            listed = []
            for name in names:
                counts = await registry.count_jobs(name)
                listed.append({"queue": name, "counts": {s.value: counts[s] for s in states}})
            print_json(listed)
            return 0
        table = Table(title="queues")
        table.add_column("queue")
        for state in states:
            table.add_column(state.value, justify="right")
        for name in names:
            counts = await registry.count_jobs(name)
            table.add_row(name, *(str(counts[s]) for s in states))
        console.print(table)
        return 0

    return run(registry, action)
