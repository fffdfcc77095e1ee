"""``jobmaster workers``: the live workers, from their heartbeats."""

from __future__ import annotations

import argparse

from rich.table import Table

from jobmaster.cli.application import registry_from, run
from jobmaster.cli.arguments import APP_HELP, Commands
from jobmaster.cli.output import console


def add_parser(commands: Commands) -> None:
    workers = commands.add_parser("workers", help="live workers")
    workers.add_argument("--app", help=APP_HELP)
    workers.set_defaults(run=show_workers)


def show_workers(args: argparse.Namespace) -> int:
    registry = registry_from(args)

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

    return run(registry, action)
