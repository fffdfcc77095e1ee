"""Types of the command line's arguments: each turns a bad value into a clear error."""

from __future__ import annotations

import argparse
from typing import TypeAlias

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What ``add_subparsers`` returns: each command module adds its commands to it."""

APP_HELP = "module:registry (default: settings from JOBMASTER_*)"


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def port_number(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port from 1 to 65535, got {value}")
    return value


def seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 seconds, got {value}")
    return value


def size(text: str) -> int:
    from jobmaster.worker.recycling import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def resources(text: str) -> str:
    """``cpu=8,gpu=2,mem=64G``, checked (the worker reads it again)."""
    from jobmaster.flow_control import parse_resources

    try:
        if not parse_resources(text):
            raise ValueError("give at least one name=amount")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def queues(text: str) -> list[str]:
    names = [q.strip() for q in text.split(",") if q.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one queue name")
    return names
