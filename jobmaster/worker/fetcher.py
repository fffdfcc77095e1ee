"""The fetcher: claims jobs into free slots only, queue by queue in priority order, and
blocks on the queues' streams when there is nothing to claim."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import ResponseError

from jobmaster.errors import describe
from jobmaster.store import Claim, ClaimedJob, Lease, Store
from jobmaster.worker.attempt import lease_token
from jobmaster.worker.completions import CompletionWriter
from jobmaster.worker.loops import BLOCK_MS, RETRY_DELAYS, interruptible
from jobmaster.worker.recycling import Recycling
from jobmaster.worker.remote_control import RemoteControl
from jobmaster.worker.resources import WorkerResources
from jobmaster.worker.running import RunningAttempts

BURST_POLL = 0.1
"""Longest sleep of a burst worker waiting for scheduled jobs to become due."""

StartFn = Callable[[str, ClaimedJob], None]
"""Starts the attempt of a claimed job, from its queue."""


class Fetcher:
    """Claims into free slots until the worker stops (or, in burst mode, has nothing left).

    Args:
        store: where jobs are claimed.
        running: the worker's running attempts (the slots they hold).
        writer: the completion writer (a burst waits for ends to be recorded).
        start: starts each claimed job.
        queues: queues to claim from, in priority order.
        worker_id: the consumer name the claims are made under.
        hostname: recorded on each attempt.
        pid: recorded on each attempt.
        concurrency: slots.
        lease_ms: the lease each claim takes.
        burst: return once nothing is queued, due or running.
        burst_scheduled: in burst mode, also wait for scheduled jobs.
        recycling: when to stop taking jobs, if ever.
        stopping: set when the worker stops taking jobs.
        log: the worker's logger.
        control: the remote control whose pause stops claiming (None: never paused).
        resumed: set when one of the queues is resumed (a queue paused by
            ``pause_queue``): a wait for work ends then.
        resources: what the worker advertises and has free (None: it advertises none).
    """

    def __init__(
        self,
        store: Store,
        running: RunningAttempts,
        writer: CompletionWriter,
        start: StartFn,
        *,
        queues: Sequence[str],
        worker_id: str,
        hostname: str,
        pid: int,
        concurrency: int,
        lease_ms: int,
        burst: bool,
        burst_scheduled: bool,
        recycling: Recycling | None,
        stopping: asyncio.Event,
        log: Any,
        control: RemoteControl | None = None,
        resumed: asyncio.Event | None = None,
        resources: WorkerResources | None = None,
    ) -> None:
        self._store = store
        self._running = running
        self._writer = writer
        self._start = start
        self._queues = list(queues)
        self._worker_id = worker_id
        self._hostname = hostname
        self._pid = pid
        self._concurrency = concurrency
        self._lease_ms = lease_ms
        self._burst = burst
        self._burst_scheduled = burst_scheduled
        self._recycling = recycling
        self._stopping = stopping
        self._log = log
        self._control = control
        self._failures = 0
        self._again = False
        """A claim held back as many limited jobs as one call may: claim again at once."""
        self._held = False
        """The last claims held jobs back: the next waits for the ends being written (they
        free units of the limits), so as not to hold back again jobs that would fit."""
        self._resumed = resumed or asyncio.Event()
        self._resources = resources
        self._claims = 0
        """Claims made so far: the next claim's id, kept until a claim gets its reply."""
        self.recycled = False
        """Whether fetching stopped because the worker reached max_jobs or max_memory."""

    async def run(self) -> None:
        """Claim until stopped, recycled, or (in burst mode) out of work."""
        slot_freed = self._running.slot_freed
        while not self._stopping.is_set():
            slot_freed.clear()
            if self._control is not None and self._control.paused:
                await slot_freed.wait()  # set on resume and on stop
                continue
            free = self._concurrency - len(self._running)
            if self._recycling is not None:
                reason = self._recycling.reason()
                if reason is not None:
                    if self._recycle(reason):
                        return
                    await slot_freed.wait()  # finish what runs
                    continue
                free = self._recycling.room(free)
            if free <= 0:
                await slot_freed.wait()
                continue
            try:
                if not await self._fetch_once(free):
                    return
            except asyncio.CancelledError:
                if self._stopping.is_set():
                    return
                raise
            except Exception as exc:  # Redis went away: keep the process, back off, go on
                delay = RETRY_DELAYS[min(self._failures, len(RETRY_DELAYS) - 1)]
                self._failures += 1
                self._log.warning("fetch failed; retrying", error=describe(exc), retry_in=delay)
                await asyncio.sleep(delay)

    def _recycle(self, reason: str) -> bool:
        """Take no more jobs; True once none runs (the worker can stop)."""
        if not self.recycled:
            self.recycled = True
            self._log.info(
                "recycling the worker: finishing running jobs, then exiting",
                reason=reason,
                running=len(self._running),
            )
        return not self._running

    async def _fetch_once(self, free: int) -> bool:
        """Claim into free slots, or block until there is work; False when a burst is over."""
        if self._held and self._writer.unrecorded:
            self._writer.recorded.clear()
            await interruptible(self._writer.recorded.wait(), self._stopping)
        self._held = False
        if self._control is None:
            claimed, newest, deferred = await self._claim(free)
        else:
            async with self._control.claiming:
                if self._control.paused:  # paused while this claim waited its turn
                    return True
                claimed, newest, deferred = await self._claim(free)
        self._failures = 0
        if claimed or self._again:
            return True
        if deferred and self._running.suspects:  # suspects wait for this worker's own to end
            await self._running.slot_freed.wait()
            return True
        if self._burst:
            return await self._burst_continues()
        self._resumed.clear()
        wakes = [self._resumed]
        if self._resources is not None:  # held jobs may fit once an attempt here ends
            wakes.append(self._running.slot_freed)
        if self._queues[0] in newest and self._store.woken.available:
            await self._wait_then_claim(newest, wakes)
            return True
        if newest:
            wait = self._store.jobs.wait_for_entries(newest, BLOCK_MS)
        else:  # every queue is paused: until one is resumed (checked again after BLOCK_MS)
            wait = asyncio.wait_for(self._resumed.wait(), BLOCK_MS / 1000)
        await interruptible(wait, self._stopping, *wakes)
        return True

    async def _wait_then_claim(
        self, newest: dict[str, list[bytes]], wakes: list[asyncio.Event]
    ) -> None:
        """Wait for work with the claim of the first queue written behind the blocking
        read, so that a job enqueued meanwhile starts one round trip after its enqueue (see
        :mod:`jobmaster.store.woken_claim`). The other queues are claimed from next time."""
        queue = self._queues[0]
        async with self._control.claiming if self._control else contextlib.nullcontext():
            if self._control is not None:
                self._control.pausing.clear()
                if self._control.paused:
                    return
                wakes = [*wakes, self._control.pausing]
            # One job at most: a worker frozen meanwhile holds no more than that for a lease.
            # A short enough block tells a late answer from one that waited for work.
            block_ms = min(BLOCK_MS, self._lease_ms // 4)
            sent = time.monotonic()
            started: list[int] = []  # jobs of the answer started at once, if any
            late: list[Claim] = []

            def on_claim(claim: Claim) -> None:
                if (time.monotonic() - sent) * 1000 > block_ms + self._lease_ms / 4:
                    late.append(claim)  # the process stalled after writing the claim
                else:
                    started.append(self._took(queue, claim))

            woken = await self._store.woken.wait_then_claim(
                newest, block_ms, queue, self._worker_id, 1, self._lease_ms,
                self._hostname, self._pid, claim_id=str(self._claims),
                suspects=0 if self._running.suspects else 1, resources=self._free_resources(),
                on_claim=on_claim,
            )  # fmt: skip
            try:
                await interruptible(woken.answered(), self._stopping, *wakes)
            except asyncio.CancelledError:
                await woken.drop()  # its jobs, if it ran, are reclaimed after their lease
                raise
            await woken.end_early()  # nothing to end if it answered
            try:
                claim = await woken.claim()  # lost connection: the next claim asks again
            except ResponseError as exc:
                self._claims += 1
                self._log.error("claim failed", queue=queue, error=str(exc))
                return
        self._claims += 1
        if claim is None:  # Redis had lost the script (loaded again): claim again
            return
        if late:
            # The leases of its jobs may have expired and their jobs run elsewhere. Hand
            # them back (a no-op for a lease taken back meanwhile) rather than run them.
            await hand_back_late(self._store, self._log, self._worker_id, queue, claim)
            return
        if self._recycling is not None:
            self._recycling.started += sum(started)
        if not sum(started):
            woken.raise_read_error()  # a read Redis refuses at once: back off

    async def _claim(self, free: int) -> tuple[int, dict[str, list[bytes]], int]:
        """Claim into free slots, queue by queue: how many were claimed, where to wait
        from for the queues that had none, and how many suspect jobs were left for later."""
        total = deferred = 0
        self._again = False
        newest: dict[str, list[bytes]] = {}
        refused: list[tuple[str, ResponseError]] = []
        for queue in self._queues:
            if free <= 0:
                break
            try:
                # a claim sent again after its reply was lost keeps its id: it gets its jobs
                claim = await self._store.jobs.claim(
                    queue,
                    self._worker_id,
                    free,
                    self._lease_ms,
                    self._hostname,
                    self._pid,
                    claim_id=str(self._claims),
                    again=self._failures > 0,
                    suspects=0 if self._running.suspects else 1,
                    resources=self._free_resources(),
                )
            except ResponseError as exc:  # this queue's keys: the other queues go on
                self._claims += 1
                refused.append((queue, exc))
                continue
            self._claims += 1  # not after a connection error: sent again, it keeps its id
            self._took(queue, claim)
            free -= len(claim.jobs)
            total += len(claim.jobs)
            deferred += claim.deferred
            if not claim.jobs and not claim.paused:
                newest[queue] = claim.newest
        if refused and not total and not newest:  # every queue refused: back off
            raise refused[0][1]
        for queue, refusal in refused:
            self._log.error(
                "claim failed; claiming from the other queues", queue=queue, error=str(refusal)
            )
        if self._recycling is not None:
            self._recycling.started += total
        return total, newest, deferred

    def _took(self, queue: str, claim: Claim) -> int:
        """Start the jobs of one queue's claim; how many."""
        for error in claim.errors:
            self._log.error("a stream of the queue could not be read", queue=queue, error=error)
        for claimed in claim.jobs:
            if self._resources is not None:
                self._resources.claimed(queue, claimed)
            self._start(queue, claimed)
        self._again = self._again or claim.more
        self._held = self._held or claim.held > 0
        return len(claim.jobs)

    def _free_resources(self) -> str:
        """What the worker has free, for the claim ("" when it advertises nothing)."""
        return "" if self._resources is None else self._resources.free(self._running)

    async def _burst_continues(self) -> bool:
        """In burst mode, with nothing claimable: wait for what may still bring work."""
        if self._running:
            await self._running.slot_freed.wait()
            return True
        if self._writer.unrecorded:  # a retry may be scheduled once these are recorded
            self._writer.recorded.clear()
            await self._writer.recorded.wait()
            return True
        next_due = -1
        for queue in self._queues:
            promotion = await self._store.jobs.promote(queue)
            if promotion.promoted:
                return True
            if promotion.next_due_ms >= 0:
                due = promotion.next_due_ms
                next_due = due if next_due < 0 else min(next_due, due)
        if self._burst_scheduled and next_due >= 0:
            # A burst never blocks on Redis: it sleeps until the next due time (at most
            # BURST_POLL), since its own attempts may schedule earlier retries meanwhile.
            await asyncio.sleep(min(next_due / 1000, BURST_POLL))
            return True
        return False


async def hand_back_late(store: Store, log: Any, worker_id: str, queue: str, claim: Claim) -> None:
    """Hand back the jobs of a claim answered too late to start them."""
    leases = [Lease(job.id, lease_token(worker_id, job.attempt)) for job in claim.jobs]
    if leases:
        log.warning(
            "a claim was answered too late to start its jobs: handing them back",
            queue=queue,
            jobs=[lease.job_id for lease in leases],
        )
        await store.leases.requeue(queue, leases, "claim answered too late")
