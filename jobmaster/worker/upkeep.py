"""The worker's background loops besides fetching: reclaiming the jobs of dead workers,
promotion of due jobs, cancellation requests, idle attempts, heartbeats and housekeeping
(lease renewal runs in a thread of its own: :mod:`jobmaster.worker.lease_keeper`).
:class:`jobmaster.worker.Worker` starts them all in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from typing import Any

from jobmaster.errors import describe
from jobmaster.models import WorkerInfo
from jobmaster.registry import Registry
from jobmaster.store import Completion, Lease, Store
from jobmaster.worker.attempt import Cancelled, IdleTimeout, RunningJob

BLOCK_MS = 5_000
"""Longest blocking read for new entries or timers (shorter waits come from due times)."""
RECLAIM_MARGIN_MS = 5
"""Wake a little after the earliest lease expiry rather than just before it."""
HOUSEKEEPING_INTERVAL = 60.0
"""Seconds between retention pruning of idle queues and removal of dead consumers."""
CONSUMER_IDLE_LEASES = 10
"""A consumer idle this many leases with nothing pending belongs to a dead worker."""
WATCHDOG_INTERVAL = 0.5
"""Longest time between checks of idle attempts."""
RETRY_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)


class UpkeepLoops:
    """The background loops of a worker (a part of :class:`jobmaster.worker.Worker`)."""

    registry: Registry
    queues: list[str]
    id: str
    hostname: str
    pid: int
    concurrency: int
    lease: float
    heartbeat: float
    jobs_done: int
    started_at: float
    log: Any
    _lease_ms: int
    _retention_ms: int
    _running: dict[tuple[str, str, str], RunningJob]
    """Attempts running in this worker, by (queue, job id, lease token): a job may have an
    old attempt still running (its lease lost) beside its new one."""
    _completions: defaultdict[str, list[tuple[RunningJob, Completion]]]
    _closing: bool
    _closed: asyncio.Event
    _control_positions: dict[str, bytes]
    _timers_read: asyncio.Future[bool] | None

    @property
    def store(self) -> Store:
        raise NotImplementedError

    async def _pause(self, seconds: float) -> None:
        """Sleep in a background loop; returns at once when the worker closes (loops stop on
        this flag, not only by cancellation, which a client library may swallow)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._closed.wait()

    def _leases(self) -> dict[str, list[Lease]]:
        """Leases to keep: running attempts and ended ones not yet recorded.

        Called from the lease keeper's thread: it copies the worker's tables with
        ``tuple()``, which the GIL makes atomic (no Python code runs in between), before it
        iterates them.
        """
        leases: defaultdict[str, list[Lease]] = defaultdict(list)
        for job in tuple(self._running.values()):
            leases[job.queue].append(Lease(job.job_id, job.token))
        for queue, done in tuple(self._completions.items()):
            leases[queue].extend(Lease(job.job_id, job.token) for job, _ in tuple(done))
        return leases

    def _renewed(self, queue: str, lost: list[Lease], cancel: list[Lease]) -> None:
        """What a renewal found (in the event loop): cancellations the control stream may
        not have delivered, and leases that another worker took over."""
        for lease in cancel:
            self._cancel(queue, lease.job_id, lease.token)
        for lease in lost:
            job = self._running.get((queue, lease.job_id, lease.token))
            if job is None or job.lease_lost:
                continue
            self.log.warning("lease lost; abandoning the attempt", job_id=lease.job_id)
            job.lease_lost = True
            if job.ctx is not None:
                job.ctx.cancelled.set()
            if job.task is not None:
                job.task.cancel()

    async def _promote_loop(self) -> None:
        """Move due scheduled jobs to their streams, then sleep until the next one is due or
        an earlier one is added (a blocking read of the timers streams)."""
        timers: dict[str, bytes] = {}

        async def promote_and_wait() -> None:
            wait_ms = BLOCK_MS
            for queue in self.queues:
                promotion = await self.store.jobs.promote(queue)
                timers[queue] = promotion.timers_id
                if promotion.next_due_ms >= 0:
                    wait_ms = min(wait_ms, promotion.next_due_ms)
            if wait_ms > 0:
                await self._wait_for_timers(timers, wait_ms)

        try:
            while not self._closing:
                await self._with_retries("promote", promote_and_wait)
        finally:
            if self._timers_read is not None:
                self._timers_read.cancel()

    async def _wait_for_timers(self, timers: dict[str, bytes], wait_ms: int) -> None:
        """Wait ``wait_ms`` or until a timers stream gets an entry newer than ``timers``.

        The due time is kept by the event loop, not by the server: Redis checks blocking
        timeouts only on its ``hz`` tick (100 ms by default). The blocking read stays
        pending across waits rather than being cancelled (which would drop its connection).
        """
        read = self._timers_read
        if read is None or read.done():
            self._timers_read = None
            if read is not None and not read.cancelled():
                read.result()  # a failed read raises here, once, for the caller to retry
            read = self._timers_read = asyncio.ensure_future(
                self.store.jobs.wait_for_timers(dict(timers), BLOCK_MS)
            )
        await asyncio.wait({read}, timeout=wait_ms / 1000)

    async def _reclaim_loop(self) -> None:
        """Take back the jobs of workers that died or stalled, as their leases expire.

        Sleeps until the earliest lease of the worker's queues expires (at most one lease
        length), so a killed worker's jobs run again about one lease after its last renewal.
        """
        wait_ms = 0

        async def reclaim() -> None:
            nonlocal wait_ms
            wait_ms = self._lease_ms
            for queue in self.queues:
                result = await self.store.leases.reclaim(queue, self.registry.settings.max_lost)
                if result.requeued or result.failed:
                    self.log.warning(
                        "took back jobs whose lease expired",
                        queue=queue,
                        requeued=len(result.requeued),
                        failed=result.failed,
                    )
                if result.next_expiry_ms >= 0:
                    wait_ms = min(wait_ms, result.next_expiry_ms + RECLAIM_MARGIN_MS)

        housekeeping = time.monotonic()
        while not self._closing:
            await self._with_retries("reclaim", reclaim)
            if time.monotonic() >= housekeeping:
                housekeeping = time.monotonic() + HOUSEKEEPING_INTERVAL
                await self._with_retries("housekeeping", self._housekeeping, attempts=1)
            await self._pause(wait_ms / 1000)

    async def _housekeeping(self) -> None:
        """Retention for queues that see no completions, and dead workers' consumer names."""
        for queue in self.queues:
            await self.store.jobs.prune(queue, self._retention_ms)
            await self.store.jobs.forget_idle_consumers(
                queue, CONSUMER_IDLE_LEASES * self._lease_ms
            )

    async def _control_loop(self) -> None:
        """Cancel running attempts whose job's cancellation was requested (a blocking read
        of the queues' control streams)."""
        positions = self._control_positions

        async def read() -> None:
            for queue, job_id, token in await self.store.control.read_control(positions, BLOCK_MS):
                self._cancel(queue, job_id, token)

        while not self._closing:
            await self._with_retries("control", read)

    def _cancel(self, queue: str, job_id: str, token: str | None) -> None:
        """Cancel the running attempt of a job (the one holding ``token``, when given)."""
        if token is not None:
            job = self._running.get((queue, job_id, token))
        else:
            held = (j for j in self._running.values() if j.queue == queue and j.job_id == job_id)
            job = next((j for j in held if not j.lease_lost), None)
        if job is None or job.abort is not None:
            return
        self.log.info("cancelling a running attempt on request", job_id=job_id)
        job.end(Cancelled("the job was cancelled while this attempt ran"))

    async def _watchdog_loop(self) -> None:
        """End attempts that made no progress for longer than their job's idle_timeout."""
        while not self._closing:
            watched = [j for j in self._running.values() if j.idle_timeout and j.abort is None]
            if not watched:
                await self._pause(WATCHDOG_INTERVAL)
                continue
            now = time.monotonic()
            for job in watched:
                if now - job.last_activity > (job.idle_timeout or 0):
                    self.log.warning("no progress; ending the attempt", job_id=job.job_id)
                    job.end(
                        IdleTimeout(
                            f"the attempt made no progress (ctx.progress, ctx.heartbeat() or "
                            f"a log line) for {job.idle_timeout:g}s"
                        )
                    )
            next_check = min(j.last_activity + (j.idle_timeout or 0) for j in watched) - now
            await self._pause(min(max(next_check, 0.01), WATCHDOG_INTERVAL))

    async def _heartbeat_loop(self) -> None:
        while not self._closing:
            await self._with_retries("heartbeat", self._heartbeat, attempts=1)
            await self._pause(self.heartbeat)

    async def _heartbeat(self) -> None:
        info = WorkerInfo(
            id=self.id,
            hostname=self.hostname,
            pid=self.pid,
            queues=self.queues,
            concurrency=self.concurrency,
            busy=len(self._running),
            jobs_done=self.jobs_done,
            started_at=self.started_at,
            last_seen=time.time(),
        )
        # Listed for as long as it could still hold a lease: one lease after the last beat.
        await self.store.workers.heartbeat(info, ttl_ms=int(self.lease * 1000))

    async def _with_retries(self, what: str, action: Any, attempts: int | None = None) -> None:
        """Run ``action`` until it succeeds (or ``attempts`` run out, or, without a limit, the
        worker closes), backing off between tries: a worker outlives a Redis restart or a
        network blip."""
        tries = 0
        while True:
            try:
                await action()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                tries += 1
                if (attempts is None and self._closing) or (
                    attempts is not None and tries >= attempts
                ):
                    self.log.error(f"{what} failed; giving up", error=describe(exc), tries=tries)
                    return
                delay = RETRY_DELAYS[min(tries - 1, len(RETRY_DELAYS) - 1)]
                self.log.warning(f"{what} failed; retrying", error=describe(exc), retry_in=delay)
                await asyncio.sleep(delay)
