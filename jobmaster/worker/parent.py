"""A supervised worker process stops when its supervisor dies.

Without this, SIGKILL of ``jobmaster worker --processes N`` leaves its N children running
with no one to stop or restart them. On Linux the kernel sends SIGTERM to a child whose
parent dies (``PR_SET_PDEATHSIG``), which the worker handles as any SIGTERM; everywhere,
and as a backstop, the worker also checks its parent's pid from time to time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable

PARENT_CHECK_INTERVAL = 1.0
"""Seconds between checks that the supervisor is still this process's parent."""
_PR_SET_PDEATHSIG = 1


def signal_on_parent_death(sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux only);
    whether it took."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # here: only supervised workers load libc

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


async def watch_parent(parent: int, on_death: Callable[[], None]) -> None:
    """Call ``on_death`` once ``parent`` is no longer this process's parent (it died, and
    the process was given to another), checking every :data:`PARENT_CHECK_INTERVAL`."""
    signal_on_parent_death()
    while True:  # checked after the request too: the parent may be gone already
        if os.getppid() != parent:
            on_death()
            return
        await asyncio.sleep(PARENT_CHECK_INTERVAL)
