"""Where the ``jobmaster`` command writes: tables and results on stdout, notes on stderr."""

from __future__ import annotations

from rich.console import Console

console = Console()
err_console = Console(stderr=True)
