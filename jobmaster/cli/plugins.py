"""Commands that other packages add to ``jobmaster``, found through entry points.

A package adds a command by registering a function in the ``jobmaster.commands``
entry-point group, under the command's name (the dashboard's ``pyproject.toml``)::

    [project.entry-points."jobmaster.commands"]
    dashboard = "jobmaster_dashboard.cli:add_command"

The function takes what ``add_subparsers`` returned, adds its command's parser, and sets
its ``run`` default: a function of the parsed arguments that returns the exit status (it
may raise :class:`jobmaster.cli.UsageError` or a :class:`jobmaster.JobmasterError`, which
``jobmaster`` reports in one line). jobmaster itself never imports those packages.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from importlib.metadata import entry_points

from jobmaster.cli.application import UsageError
from jobmaster.cli.arguments import Commands

ENTRY_POINT_GROUP = "jobmaster.commands"
COMPANIONS = {"dashboard": ("serve the web dashboard", "jobmaster-dashboard")}
"""Commands of jobmaster's companion packages, by name: their help line, and the package
that brings them (``jobmaster --help`` lists them, installed or not)."""


def add_plugin_commands(commands: Commands) -> None:
    """Add the commands registered by installed packages; a companion's command that is
    not installed (or cannot be imported) says which package to install."""
    added: set[str] = set()
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in added or entry.name in commands.choices:
            continue  # a built-in command, or another package took the name first
        added.add(entry.name)
        package = entry.dist.name if entry.dist is not None else entry.module.split(".")[0]
        try:
            add: Callable[[Commands], None] = entry.load()
        except ImportError as exc:
            why = f"needs {package}, which cannot be imported ({exc})"
            _add_unavailable(commands, entry.name, why, package)
        else:
            add(commands)
    for name, (text, package) in COMPANIONS.items():
        if name not in added:
            why = f"needs {package}, which is not installed"
            _add_unavailable(commands, name, why, package, text)


def _add_unavailable(
    commands: Commands, name: str, why: str, package: str, text: str | None = None
) -> None:
    """A command that takes any arguments and explains why it cannot run."""

    def explain(args: argparse.Namespace) -> int:
        raise UsageError(f"jobmaster {name} {why}: pip install {package}")

    help_text = f"{text or 'unavailable'} (pip install {package})"
    parser = commands.add_parser(name, help=help_text, add_help=False)
    parser.set_defaults(run=explain, takes_any_arguments=True)
