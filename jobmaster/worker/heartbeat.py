"""The heartbeat: keeps the worker listed (``registry.workers()``, the dashboard) with what
it is doing (its state, the jobs it runs, its telemetry), for as long as it could still hold
a lease."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jobmaster.models import WorkerInfo, WorkerState
from jobmaster.store import Store
from jobmaster.worker.loops import pause, with_retries
from jobmaster.worker.running import RunningAttempts
from jobmaster.worker.telemetry import TelemetrySampler


class Heartbeat:
    """Writes the worker's :class:`WorkerInfo` every ``interval`` seconds until it closes.

    Args:
        store: where the worker is listed.
        running: the attempts running now (how busy it is).
        jobs_done: how many attempt ends were recorded so far.
        worker_id: the worker's id.
        hostname: its host.
        pid: its process id.
        queues: the queues it consumes.
        concurrency: its slots.
        started_at: when it started (epoch seconds).
        lease: the lease length in seconds (how long it stays listed after a beat).
        interval: seconds between beats.
        log: the worker's logger.
        closed: set when the worker closes.
        state: the worker's state now (default: always running).
        telemetry: samples the figures sent with each beat (default: none sent).
        resources: what the worker advertises (None: none).
    """

    def __init__(
        self,
        store: Store,
        running: RunningAttempts,
        jobs_done: Callable[[], int],
        *,
        worker_id: str,
        hostname: str,
        pid: int,
        queues: Sequence[str],
        concurrency: int,
        started_at: float,
        lease: float,
        interval: float,
        log: Any,
        closed: asyncio.Event,
        state: Callable[[], WorkerState] | None = None,
        telemetry: TelemetrySampler | None = None,
        resources: Mapping[str, float] | None = None,
    ) -> None:
        self._store = store
        self._running = running
        self._jobs_done = jobs_done
        self._worker_id = worker_id
        self._hostname = hostname
        self._pid = pid
        self._queues = list(queues)
        self._concurrency = concurrency
        self._started_at = started_at
        self._lease = lease
        self._interval = interval
        self._log = log
        self._closed = closed
        self._state = state
        self._telemetry = telemetry
        self._resources = dict(resources) if resources is not None else None

    async def run(self) -> None:
        while not self._closed.is_set():
            await with_retries(
                "heartbeat", self.beat, log=self._log, closed=self._closed, attempts=1
            )
            await pause(self._closed, self._interval)

    async def beat(self) -> None:
        """List the worker once."""
        info = WorkerInfo(
            id=self._worker_id,
            hostname=self._hostname,
            pid=self._pid,
            queues=self._queues,
            concurrency=self._concurrency,
            busy=len(self._running),
            jobs_done=self._jobs_done(),
            started_at=self._started_at,
            last_seen=time.time(),
            state=self._state() if self._state is not None else "running",
            running=self._running.job_ids(),
            telemetry=self._telemetry.sample() if self._telemetry is not None else None,
            resources=self._resources,
        )
        # Listed for as long as it could still hold a lease: one lease after the last beat.
        await self._store.workers.heartbeat(info, ttl_ms=int(self._lease * 1000))
