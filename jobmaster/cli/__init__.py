"""The ``jobmaster`` command: one module per command group.

Commands of other packages (``jobmaster dashboard``) come from entry points, see
:mod:`jobmaster.cli.plugins`; they may use :class:`UsageError`, :func:`load_registry`
and :func:`say_which_redis` from here.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import structlog

from jobmaster.cli import enqueue, groups, jobs, logs, queues, schedules, worker, workers
from jobmaster.cli.application import UsageError, load_registry, registry_from, say_which_redis
from jobmaster.cli.arguments import Commands
from jobmaster.cli.output import err_console
from jobmaster.cli.plugins import add_plugin_commands
from jobmaster.errors import JobmasterError

__all__ = [
    "Commands",
    "UsageError",
    "build_parser",
    "load_registry",
    "main",
    "registry_from",
    "say_which_redis",
]

DESCRIPTION = "The ``jobmaster`` command: run workers, enqueue jobs and inspect them."
COMMAND_GROUPS = (worker, enqueue, jobs, groups, logs, queues, workers, schedules)
LOG_FORMATS = ("console", "json")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command. When ``argv`` runs a built-in command, the commands of
    other packages are left out (so that a worker does not import them)."""
    parser = argparse.ArgumentParser(prog="jobmaster", description=DESCRIPTION)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    parser.add_argument(
        "--log-format",
        default="console",
        choices=LOG_FORMATS,
        help="console: lines for people (the default); json: one JSON object per line, with "
        "the worker's id and each job's id and attempt as fields",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.add_parser(commands)
    if argv is None or _command_of(argv) not in commands.choices:
        add_plugin_commands(commands)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names: its first word that is not an option of ``jobmaster``."""
    words = iter(argv)
    for word in words:
        if word in ("--log-level", "--log-format"):
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def configure_logging(level: str, log_format: str) -> None:
    """structlog's output: lines for people, or JSON lines (ISO times, the level as a field)."""
    wrapper = structlog.make_filtering_bound_logger(getattr(logging, level.upper()))
    if log_format == "json":
        structlog.configure(
            wrapper_class=wrapper,
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.dict_tracebacks,
                structlog.processors.JSONRenderer(),
            ],
        )
    else:
        structlog.configure(wrapper_class=wrapper)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jobmaster`` command; returns its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "takes_any_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    configure_logging(args.log_level, args.log_format)
    try:
        code: int = args.run(args)
    except (UsageError, JobmasterError) as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        return 2 if isinstance(exc, UsageError) else 1
    return code
