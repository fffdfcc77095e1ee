"""``jobmaster workers``: the live workers, from their heartbeats (with their state, the jobs
they run and their telemetry), and ``jobmaster workers pause|resume|drain|stop``: remote
control of them, by id, by host or all."""

from __future__ import annotations

import argparse
import time

from rich.table import Table

from jobmaster.cli.application import UsageError, registry_from, run
from jobmaster.cli.arguments import APP_HELP, Commands
from jobmaster.cli.output import console, print_json
from jobmaster.fleet import ACK_TIMEOUT
from jobmaster.models import WorkerCommandResult, WorkerInfo

COMMAND_HELP = {
    "pause": "claim nothing new; keep running what they have",
    "resume": "claim jobs again after a pause",
    "drain": "take nothing new, finish what runs (within the grace period), exit 0",
    "stop": "stop as on SIGTERM (twice: hand back what runs at once)",
}
MIB = 1024 * 1024


def add_parser(commands: Commands) -> None:
    workers = commands.add_parser("workers", help="live workers; pause, resume, drain, stop")
    workers.add_argument("--app", help=APP_HELP)
    workers.add_argument("--json", action="store_true", help="one JSON document on stdout")
    workers.set_defaults(run=show_workers)
    actions = workers.add_subparsers(dest="action", metavar="{pause,resume,drain,stop}")
    for name, text in COMMAND_HELP.items():
        action = actions.add_parser(name, help=text, description=f"Workers: {text}.")
        action.add_argument("worker_id", nargs="?", metavar="ID", help="a worker's id")
        action.add_argument("--host", help="every live worker on this host")
        action.add_argument("--all", action="store_true", help="every live worker")
        action.add_argument(
            "--timeout",
            type=float,
            default=ACK_TIMEOUT,
            help=f"seconds to wait for each acknowledgement (default {ACK_TIMEOUT:g})",
        )
        action.add_argument("--app", help=APP_HELP, default=argparse.SUPPRESS)
        action.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
        action.set_defaults(run=control_workers, command=name)


def show_workers(args: argparse.Namespace) -> int:
    registry = registry_from(args)

    async def action() -> int:
        workers = await registry.workers()
        if args.json:
            print_json(workers)
        else:
            console.print(_table(workers))
        return 0

    return run(registry, action)


def _table(workers: list[WorkerInfo]) -> Table:
    table = Table(title="live workers")
    columns = ("id", "host", "pid", "state", "queues", "busy", "done", "running", "cpu", "rss")
    for column in (*columns, "host cpu/mem", "load", "last seen"):
        table.add_column(column)
    now = time.time()
    for w in workers:
        t = w.telemetry
        table.add_row(
            w.id,
            w.hostname,
            str(w.pid),
            w.state,
            ",".join(w.queues),
            f"{w.busy}/{w.concurrency}",
            str(w.jobs_done),
            " ".join(w.running),
            f"{t.cpu_percent:.0f}%" if t else "-",
            f"{t.rss_bytes / MIB:.0f} MiB" if t else "-",
            f"{t.host_cpu_percent:.0f}% / {t.host_memory_percent:.0f}%" if t else "-",
            " ".join(f"{x:.2f}" for x in t.load_avg) if t else "-",
            f"{max(now - w.last_seen, 0):.0f} s ago",
        )
    return table


def control_workers(args: argparse.Namespace) -> int:
    chosen = (args.worker_id is not None) + (args.host is not None) + args.all
    if chosen != 1:
        raise UsageError(f"workers {args.command}: give one of ID, --host HOST or --all")
    if not args.timeout > 0:
        raise UsageError(f"--timeout must be > 0 seconds, got {args.timeout}")
    registry = registry_from(args)
    send = getattr(registry, f"{args.command}_worker")

    async def action() -> int:
        results: list[WorkerCommandResult] = await send(
            args.worker_id, host=args.host, all=args.all, timeout=args.timeout
        )
        if args.json:
            print_json(results)
        elif not results:
            console.print("no live worker matches", highlight=False)
        else:
            table = Table(title=f"workers {args.command}")
            for column in ("id", "delivered", "state", "detail"):
                table.add_column(column)
            for r in results:
                table.add_row(r.worker_id, "yes" if r.delivered else "no", r.state or "-", r.detail)
            console.print(table)
        return 0 if results and all(r.delivered for r in results) else 1

    return run(registry, action)
