"""The watchdog: ends attempts that made no progress for longer than their job's
idle_timeout."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from jobmaster.worker.attempt import IdleTimeout
from jobmaster.worker.loops import pause
from jobmaster.worker.running import RunningAttempts

WATCHDOG_INTERVAL = 0.5
"""Longest time between checks of idle attempts."""


async def watch_idle_attempts(running: RunningAttempts, *, log: Any, closed: asyncio.Event) -> None:
    """Check the running attempts until the worker closes, as often as their idle timeouts
    need (at least every :data:`WATCHDOG_INTERVAL`)."""
    while not closed.is_set():
        watched = [j for j in running.values() if j.idle_timeout and j.abort is None]
        if not watched:
            await pause(closed, WATCHDOG_INTERVAL)
            continue
        now = time.monotonic()
        for job in watched:
            if now - job.last_activity > (job.idle_timeout or 0):
                log.warning("no progress; ending the attempt", job_id=job.job_id)
                job.end(
                    IdleTimeout(
                        f"the attempt made no progress (ctx.progress, ctx.heartbeat() or "
                        f"a log line) for {job.idle_timeout:g}s"
                    )
                )
        next_check = min(j.last_activity + (j.idle_timeout or 0) for j in watched) - now
        await pause(closed, min(max(next_check, 0.01), WATCHDOG_INTERVAL))
