"""Where the ``jobmaster`` command writes: tables and results on stdout, notes on stderr;
with ``--json``, one JSON document on stdout instead of the tables."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

JSON_HELP = "print one JSON document on stdout instead of tables (field names are stable)"


def print_json(value: Any) -> None:
    """Print ``value`` as one JSON document: pydantic models as their fields (times as ISO
    8601 text), in lists and dicts too."""
    print(json.dumps(_plain(value), indent=2, default=str))


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
