"""``jobmaster queues``: jobs per state in every queue, whether it is paused, and what its
limits hold back; ``jobmaster queues pause|resume QUEUE``."""

from __future__ import annotations

import argparse

from rich.table import Table

from jobmaster.cli.application import registry_from, run
from jobmaster.cli.arguments import APP_HELP, Commands
from jobmaster.cli.output import JSON_HELP, console, print_json
from jobmaster.models import JobState
from jobmaster.store.types import LimitState


def add_parser(commands: Commands) -> None:
    queues = commands.add_parser(
        "queues", help="jobs per state in every queue, paused queues and limits; pause, resume"
    )
    queues.add_argument("--app", help=APP_HELP)
    queues.add_argument("--json", action="store_true", help=JSON_HELP)
    queues.set_defaults(run=show_queues)
    actions = queues.add_subparsers(dest="action", metavar="{pause,resume}")
    for name, text in (
        ("pause", "claim nothing from the queue (enqueues still write; running jobs go on)"),
        ("resume", "let workers claim from the queue again"),
    ):
        action = actions.add_parser(name, help=text, description=f"Queues: {text}.")
        action.add_argument("queue", metavar="QUEUE")
        action.add_argument("--app", help=APP_HELP, default=argparse.SUPPRESS)
        action.set_defaults(run=pause_or_resume, command=name)


def pause_or_resume(args: argparse.Namespace) -> int:
    registry = registry_from(args)

    async def action() -> int:
        if args.command == "pause":
            changed = await registry.pause_queue(args.queue)
            console.print(f"queue {args.queue} " + ("paused" if changed else "was paused already"))
        else:
            changed = await registry.resume_queue(args.queue)
            console.print(f"queue {args.queue} " + ("resumed" if changed else "was not paused"))
        return 0

    return run(registry, action)


def _limit_text(limit: LimitState) -> str:
    parts = []
    if limit.max_running is not None:
        parts.append(f"running {limit.running}/{limit.max_running}")
    if limit.rate is not None:
        starts, _, window_ms = limit.rate.partition("/")
        parts.append(f"rate {starts} per {int(window_ms) / 1000:g} s")
    parts.append(f"held back {limit.waiting}")
    return f"{limit.key}: " + ", ".join(parts)


def show_queues(args: argparse.Namespace) -> int:
    registry = registry_from(args)

    async def action() -> int:
        names = sorted(set(await registry.known_queues()) | set(registry.queues()))
        states = list(JobState)
        paused = set(await registry.paused_queues())
        if args.json:
            listed = []
            for name in names:
                counts = await registry.count_jobs(name)
                limits = await registry.queue_limits(name)
                listed.append(
                    {
                        "queue": name,
                        "paused": name in paused,
                        "counts": {s.value: counts[s] for s in states},
                        "held_for_resources": [
                            {
                                "id": h.job_id,
                                "needs": h.needs,
                                "fits_a_live_worker": h.fits_a_live_worker,
                            }
                            for h in await registry.held_for_resources(name)
                        ],
                        "limits": [
                            {
                                "key": limit.key,
                                "max_running": limit.max_running,
                                "rate": limit.rate,
                                "running": limit.running,
                                "held_back": limit.waiting,
                            }
                            for limit in limits
                        ],
                    }
                )
            print_json(listed)
            return 0
        table = Table(title="queues")
        table.add_column("queue")
        for state in states:
            table.add_column(state.value, justify="right")
        lines = []
        for name in names:
            counts = await registry.count_jobs(name)
            label = f"{name} (paused)" if name in paused else name
            table.add_row(label, *(str(counts[s]) for s in states))
            lines += [
                f"  {name}: {_limit_text(limit)}" for limit in await registry.queue_limits(name)
            ]
            held = await registry.held_for_resources(name)
            if held:
                unfit = [h.job_id for h in held if not h.fits_a_live_worker]
                text = f"  {name}: held back for resources {len(held)}"
                if unfit:
                    text += f", of which {len(unfit)} need more than any live worker offers: "
                    text += " ".join(unfit[:10]) + (" ..." if len(unfit) > 10 else "")
                lines.append(text)
        console.print(table)
        if lines:
            console.print("limits:", *lines, sep="\n", highlight=False, markup=False, emoji=False)
        return 0

    return run(registry, action)
