"""Worker recycling: a worker that has started enough jobs, or grown too big, stops taking
jobs, finishes the ones it runs and exits, and its supervisor starts a fresh process (as
Celery's ``max_tasks_per_child`` and ``max_memory_per_child``). A handler that leaks memory
then costs a restart now and then instead of a worker that grows for ever.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from jobmaster.errors import ConfigError

if TYPE_CHECKING:
    import psutil

RECYCLED_EXIT_CODE = 75
"""Exit status of a supervised worker that recycled itself (EX_TEMPFAIL): the supervisor
starts a new one at once. Without a supervisor a recycled worker exits 0."""
RETIRED_EXIT_CODE = 79
"""Exit status of a supervised worker that was drained or stopped remotely
(``drain_worker``, ``stop_worker``): the supervisor does not start another in its place, and
counts it as a clean exit. Without a supervisor such a worker exits 0."""
MEMORY_CHECK_INTERVAL = 0.1
"""Shortest time between two looks at the worker's memory."""

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes in a size such as ``512M``, ``2G``, ``1.5G`` or ``800000`` (K, M, G and T are
    powers of 1024; ``MB``, ``MiB`` are read as ``M``)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ConfigError(f"not a size: {text!r} (give bytes, or a number with K, M, G or T)")
    size = int(float(match[1]) * _UNITS[match[2].upper()])
    if size < 1:
        raise ConfigError(f"a size must be at least one byte, got {text!r}")
    return size


def format_size(size: int) -> str:
    """A size in MiB, for messages."""
    return f"{size / 1024**2:.0f} MiB"


class Recycling:
    """When a worker should recycle itself: after ``max_jobs`` started jobs, or once its
    resident memory passes ``max_memory`` bytes."""

    def __init__(self, max_jobs: int | None = None, max_memory: int | None = None) -> None:
        if max_jobs is not None and max_jobs < 1:
            raise ConfigError(f"max_jobs must be >= 1, got {max_jobs}")
        if max_memory is not None and max_memory < 1:
            raise ConfigError(f"max_memory must be >= 1 byte, got {max_memory}")
        self.max_jobs = max_jobs
        self.max_memory = max_memory
        self.started = 0
        self._process = _this_process() if max_memory is not None else None
        self._checked_at = 0.0
        self._reason: str | None = None

    def room(self, free: int) -> int:
        """How many of ``free`` slots may still take a job."""
        if self.max_jobs is None:
            return free
        return min(free, self.max_jobs - self.started)

    def reason(self) -> str | None:
        """Why the worker should recycle itself now, if it should."""
        if self._reason is None:
            if self.max_jobs is not None and self.started >= self.max_jobs:
                self._reason = f"started {self.started} jobs (max_jobs {self.max_jobs})"
            elif self._process is not None and self.max_memory is not None:
                now = time.monotonic()
                if now - self._checked_at >= MEMORY_CHECK_INTERVAL:
                    self._checked_at = now
                    rss = int(self._process.memory_info().rss)
                    if rss > self.max_memory:
                        self._reason = (
                            f"uses {format_size(rss)} of memory "
                            f"(max_memory {format_size(self.max_memory)})"
                        )
        return self._reason


def _this_process() -> psutil.Process:
    import psutil  # here: only a worker with max_memory reads its memory

    return psutil.Process()
