"""The worker: fetches into free slots, runs attempts, records how they end.

Every background loop is started in :meth:`Worker.run`: fetching, flushing completions and
output, promoting due jobs and heartbeating, and the lease keeper's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
import structlog
from redis.exceptions import ResponseError

from jobmaster.definition import QUEUE_PATTERN
from jobmaster.errors import (
    ConfigError,
    RedisAccessDenied,
    describe,
    is_access_denied,
    is_out_of_memory,
    safe_url,
)
from jobmaster.event_loop import loop_name
from jobmaster.registry import Registry
from jobmaster.scheduler import Scheduler
from jobmaster.store import ClaimedJob, Completion, Lease, Output, Recorded, Store
from jobmaster.store.leases import LeaseRenewer
from jobmaster.worker.attempt import AttemptTimeout, RunningJob, run_attempt
from jobmaster.worker.dropped_output import DroppedOutput
from jobmaster.worker.lease_keeper import LeaseKeeper, RenewFn
from jobmaster.worker.parent import watch_parent
from jobmaster.worker.process_executor import preload
from jobmaster.worker.recycling import Recycling
from jobmaster.worker.upkeep import BLOCK_MS, RETRY_DELAYS, UpkeepLoops

OUTPUT_INTERVAL = 0.25
"""How often log lines and progress of running attempts are written."""
UPKEEP_STOP_SECONDS = 5.0
BURST_POLL = 0.1
"""Longest sleep of a burst worker waiting for scheduled jobs to become due."""


class Worker(UpkeepLoops):
    """Runs a registry's jobs from its queues.

    Args:
        registry: the jobs this worker can run and where their data lives.
        queues: queues to consume, in priority order (default: every queue the registry's
            jobs use).
        concurrency: attempts run at once (async in the loop, sync in threads).
        burst: stop once nothing is queued, due or running.
        burst_scheduled: in burst mode, also wait for scheduled jobs (delays, retries).
        lease: seconds a job is held between renewals (default: the registry's setting).
        heartbeat: seconds between lease renewals and worker heartbeats (default: the
            registry's setting, else lease / 3).
        grace: seconds running attempts get to finish at shutdown before they are
            cancelled and handed back.
        install_signal_handlers: stop on SIGTERM/SIGINT (a second signal: stop now).
        supervisor: pid of the process that supervises this one: when it dies, stop as on
            SIGTERM (``jobmaster worker --processes N`` sets it in its children).
        max_jobs: recycle the worker after it started this many jobs: take no more, finish
            those that run, and return from :meth:`run` with :attr:`recycled` set.
        max_memory: recycle the worker once its resident memory passes this many bytes.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int = 100,
        burst: bool = False,
        burst_scheduled: bool = False,
        lease: float | None = None,
        heartbeat: float | None = None,
        grace: float = 30.0,
        install_signal_handlers: bool = True,
        echo_job_logs: bool = True,
        supervisor: int | None = None,
        max_jobs: int | None = None,
        max_memory: int | None = None,
    ) -> None:
        if concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
        if grace < 0:
            raise ConfigError(f"grace must be >= 0 seconds, got {grace}")
        self.registry = registry
        self.queues = list(queues) if queues else registry.queues()
        if not self.queues:
            raise ConfigError("the registry defines no jobs and no queues were given")
        bad = [q for q in self.queues if not re.fullmatch(QUEUE_PATTERN, q)]
        if bad:
            raise ConfigError(f"invalid queue name(s): {', '.join(map(repr, bad))}")
        self.concurrency = concurrency
        self.burst = burst
        self.burst_scheduled = burst_scheduled
        self.lease = registry.settings.lease if lease is None else lease
        if self.lease <= 0:
            raise ConfigError(f"lease must be > 0 seconds, got {self.lease}")
        if heartbeat is None:
            heartbeat = registry.settings.heartbeat or self.lease / 3
        self.heartbeat = heartbeat
        if not 0 < self.heartbeat < self.lease:
            raise ConfigError(
                f"heartbeat ({self.heartbeat:g}s) must be > 0 and shorter than the lease "
                f"({self.lease:g}s)"
            )
        self.grace = grace
        self.install_signal_handlers = install_signal_handlers
        self.supervisor = supervisor
        self._recycling = (
            Recycling(max_jobs, max_memory)
            if max_jobs is not None or max_memory is not None
            else None
        )
        self.recycled = False
        """Whether the worker stopped because it reached max_jobs or max_memory."""
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.id = f"{self.hostname}-{self.pid}-{uuid.uuid4().hex[:8]}"
        self.jobs_done = 0
        self.started_at = time.time()
        self.log = structlog.get_logger("jobmaster.worker").bind(worker=self.id)
        self._echo = self._echo_line if echo_job_logs else None
        self._lease_ms = int(self.lease * 1000)
        self._retention_ms = int(registry.settings.retention * 1000)
        self._running: dict[tuple[str, str, str], RunningJob] = {}
        self._completions: defaultdict[str, list[tuple[RunningJob, Completion]]] = defaultdict(list)
        self._outputs: defaultdict[str, list[Output]] = defaultdict(list)
        self._dropped = DroppedOutput()
        self._executor: ThreadPoolExecutor | None = None
        self._store: Store | None = None
        self._stopping = False
        self._handing_back = False
        self._stop_requested = asyncio.Event()
        self._fetch_failures = 0
        self._closing = False
        self._control_positions: dict[str, bytes] = {}
        self._closed = asyncio.Event()
        self._flush_task: asyncio.Task[None] | None = None
        self._fetch_task: asyncio.Task[None] | None = None
        self._timers_read: asyncio.Future[bool] | None = None
        self._slot_freed = asyncio.Event()
        self._flush_wanted = asyncio.Event()
        self._hurry = asyncio.Event()
        self._recorded = asyncio.Event()
        self._unrecorded = 0
        """Attempts that ended but whose completion is not yet written."""
        self._suspects = 0
        """Leases of suspect jobs (lost before) this worker holds, running or ended but not
        yet recorded: a worker holds one at a time."""
        self._claims = 0
        """Claims made so far: the next claim's id, kept until a claim gets its reply."""

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the worker is not running")
        return self._store

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until stopped (or, in burst mode, until there is nothing left to do)."""
        self.registry.check_config()
        self._store = self.registry.new_store()
        if any(not h.is_async for h in self.registry.jobs.values()):
            self._executor = ThreadPoolExecutor(self.concurrency, "jobmaster-sync")
        preload([h for h in self.registry.jobs.values() if h.definition.executor == "process"])
        loop = asyncio.get_running_loop()
        if self.install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_signal, sig)
        upkeep: list[asyncio.Future[Any]] = []
        keeper = self._lease_keeper(loop)
        if self.supervisor is not None:
            watch = watch_parent(self.supervisor, self._orphaned)
            upkeep.append(loop.create_task(watch, name="jobmaster-parent-watch"))
        started = False
        try:
            started = await self._start_up()
            if not started:
                return
            keeper.start()
            self._flush_task = loop.create_task(self._flush_loop(), name="jobmaster-flush")
            upkeep += [
                self._flush_task,
                loop.create_task(self._heartbeat_loop(), name="jobmaster-heartbeat"),
                loop.create_task(self._reclaim_loop(), name="jobmaster-reclaim"),
                loop.create_task(self._watchdog_loop(), name="jobmaster-watchdog"),
                loop.create_task(self._control_loop(), name="jobmaster-control"),
            ]
            if not self.burst:
                upkeep.append(loop.create_task(self._promote_loop(), name="jobmaster-promote"))
                scheduler = Scheduler(
                    self.registry,
                    self.store,
                    self.queues,
                    self.id,
                    log=self.log,
                    closed=self._closed,
                )
                upkeep.append(loop.create_task(scheduler.run(), name="jobmaster-scheduler"))
            self.log.info(
                "worker started",
                queues=self.queues,
                concurrency=self.concurrency,
                burst=self.burst,
                loop=loop_name(loop),
            )
            self._fetch_task = loop.create_task(self._fetch_loop(), name="jobmaster-fetch")
            with contextlib.suppress(asyncio.CancelledError):
                await self._fetch_task
            await self._drain()
        finally:
            await self._stop_upkeep(upkeep)
            if started:  # before that, nothing of this worker is in Redis
                await self._flush_until_empty()
                with contextlib.suppress(Exception):
                    await self.store.workers.remove_worker(self.id)
                    for queue in self.queues:
                        await self.store.jobs.forget_consumer(queue, self.id)
            await asyncio.to_thread(keeper.stop)  # the leases of what was flushed are done
            if self.install_signal_handlers:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
            await self.store.close()
            self.log.info("worker stopped", jobs_done=self.jobs_done)

    async def _stop_upkeep(self, upkeep: list[asyncio.Future[Any]]) -> None:
        """Stop the background loops: the flush loop on a flag (after its current batch),
        the others by cancellation, waiting a bounded time (a cancellation swallowed by a
        client library must not keep the process alive)."""
        self._closing = True
        self._closed.set()
        self._flush_wanted.set()
        if self._timers_read is not None:
            upkeep.append(self._timers_read)
        for task in upkeep:
            if task is not self._flush_task:
                task.cancel()
        if upkeep:
            _, pending = await asyncio.wait(upkeep, timeout=UPKEEP_STOP_SECONDS)
            if pending:
                names = sorted(t.get_name() for t in pending if isinstance(t, asyncio.Task))
                self.log.warning("background tasks did not stop in time", tasks=names)

    def stop(self) -> None:
        """Stop fetching; running attempts get the grace period to finish."""
        if self._stopping:
            return
        self._stopping = True
        self._slot_freed.set()
        self._recorded.set()  # a burst worker may be waiting for completions to be written
        self._stop_requested.set()

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stopping:
            self.log.warning("second signal: handing back running jobs now", signal=sig.name)
            self._hurry.set()
            return
        self.log.info("signal received: finishing running jobs", signal=sig.name, grace=self.grace)
        self.stop()

    def _orphaned(self) -> None:
        if not self._stopping:
            self.log.warning("supervisor died: finishing running jobs", grace=self.grace)
        self.stop()

    async def _start_up(self) -> bool:
        """Check this worker's Redis permissions and register its queues, trying again
        while Redis cannot be reached; False if the worker was stopped first.

        Raises:
            RedisAccessDenied: Redis refused the credentials, or a command jobmaster needs.
        """
        tries = 0
        while not self._stopping:
            try:
                await self._interruptible(self._check_access_and_register())
                return not self._stopping
            except asyncio.CancelledError:
                raise
            except RedisAccessDenied:
                raise
            except Exception as exc:
                if is_access_denied(exc):
                    url = safe_url(self.registry.settings.redis_url)
                    raise RedisAccessDenied(f"Redis at {url} refused access: {exc}") from exc
                delay = RETRY_DELAYS[min(tries, len(RETRY_DELAYS) - 1)]
                tries += 1
                self.log.warning("start failed; retrying", error=describe(exc), retry_in=delay)
                await self._interruptible(asyncio.sleep(delay))
        return False

    async def _check_access_and_register(self) -> None:
        refused = await self.store.access.refused_commands(self.queues[0])
        if refused:
            url = safe_url(self.registry.settings.redis_url)
            raise RedisAccessDenied(
                f"the Redis user of {url} may not run {', '.join(refused)}, which jobmaster "
                f"needs (grant them with ACL SETUSER, e.g. +@all or +{refused[0].lower()})"
            )
        await self._register_queues()

    async def _register_queues(self) -> None:
        for queue in self.queues:
            await self.store.jobs.ensure_groups(queue)
        # Before the first claim: a cancellation requested for a job this worker claims
        # must come after the position its control loop reads from.
        self._control_positions = await self.store.control.newest_control_ids(self.queues)

    async def _drain(self) -> None:
        """Let running attempts finish within the grace period, then hand the rest back."""
        tasks = [job.task for job in self._running.values() if job.task is not None]
        if tasks:
            waits: list[asyncio.Future[Any]] = [
                asyncio.gather(*tasks, return_exceptions=True),
                asyncio.ensure_future(self._hurry.wait()),
            ]
            await asyncio.wait(waits, timeout=self.grace, return_when=asyncio.FIRST_COMPLETED)
            waits[1].cancel()
        leftover = list(self._running.values())
        if not leftover:
            return
        self._handing_back = True
        for job in leftover:
            if job.ctx is not None:
                job.ctx.cancelled.set()
            if job.task is not None:
                job.task.cancel()
        threads = sum(1 for job in leftover if job.in_thread)
        if threads:
            self.log.warning(
                "waiting for sync handlers to return before handing their jobs back (a thread "
                "cannot be interrupted; executor='process' can be killed)",
                threads=threads,
            )
        await asyncio.gather(*(j.task for j in leftover if j.task), return_exceptions=True)
        by_queue: defaultdict[str, list[Lease]] = defaultdict(list)
        for job in leftover:
            by_queue[job.queue].append(Lease(job.job_id, job.token))
        for queue, leases in by_queue.items():
            await self._with_retries(  # bounded: if Redis is gone, their leases expire
                "hand back",
                lambda q=queue, ls=leases: self.store.leases.requeue(q, ls, "worker shutting down"),
                attempts=len(RETRY_DELAYS),
            )
        self.log.info("handed back running jobs", count=len(leftover))

    # -- fetching ------------------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        while not self._stopping:
            self._slot_freed.clear()
            free = self.concurrency - len(self._running)
            if self._recycling is not None:
                reason = self._recycling.reason()
                if reason is not None:
                    if self._recycle(reason):
                        return
                    await self._slot_freed.wait()  # finish what runs
                    continue
                free = self._recycling.room(free)
            if free <= 0:
                await self._slot_freed.wait()
                continue
            try:
                if not await self._fetch_once(free):
                    return
            except asyncio.CancelledError:
                if self._stopping:
                    return
                raise
            except Exception as exc:  # Redis went away: keep the process, back off, go on
                delay = RETRY_DELAYS[min(self._fetch_failures, len(RETRY_DELAYS) - 1)]
                self._fetch_failures += 1
                self.log.warning("fetch failed; retrying", error=describe(exc), retry_in=delay)
                await asyncio.sleep(delay)

    def _recycle(self, reason: str) -> bool:
        """Take no more jobs; True once none runs (the worker can stop)."""
        if not self.recycled:
            self.recycled = True
            self.log.info(
                "recycling the worker: finishing running jobs, then exiting",
                reason=reason,
                running=len(self._running),
            )
        return not self._running

    async def _fetch_once(self, free: int) -> bool:
        """Claim into free slots, or block until there is work; False when a burst is over."""
        claimed, newest, deferred = await self._claim(free)
        self._fetch_failures = 0
        if claimed:
            return True
        if deferred and self._suspects:  # suspects wait for this worker's own to end
            await self._slot_freed.wait()
            return True
        if self.burst:
            return await self._burst_continues()
        await self._interruptible(self.store.jobs.wait_for_entries(newest, BLOCK_MS))
        return True

    async def _interruptible(self, wait: Coroutine[Any, Any, Any]) -> None:
        """Wait on a blocking read, or until :meth:`stop` is called.

        The read is abandoned rather than awaited after a stop (nothing is lost: it only
        waits for work): cancelling a blocked read is not reliably prompt in redis-py.
        """
        read = asyncio.ensure_future(wait)
        stop = asyncio.ensure_future(self._stop_requested.wait())
        done, _ = await asyncio.wait({read, stop}, return_when=asyncio.FIRST_COMPLETED)
        if read in done:
            stop.cancel()
            read.result()
        else:
            read.cancel()
            read.add_done_callback(_consume)

    async def _claim(self, free: int) -> tuple[int, dict[str, list[bytes]], int]:
        """Claim into free slots, queue by queue: how many were claimed, where to wait
        from for the queues that had none, and how many suspect jobs were left for later."""
        total = deferred = 0
        newest: dict[str, list[bytes]] = {}
        refused: list[tuple[str, ResponseError]] = []
        for queue in self.queues:
            if free <= 0:
                break
            try:
                # a claim sent again after its reply was lost keeps its id: it gets its jobs
                claim = await self.store.jobs.claim(
                    queue,
                    self.id,
                    free,
                    self._lease_ms,
                    self.hostname,
                    self.pid,
                    claim_id=str(self._claims),
                    again=self._fetch_failures > 0,
                    suspects=0 if self._suspects else 1,
                )
            except ResponseError as exc:  # this queue's keys: the other queues go on
                self._claims += 1
                refused.append((queue, exc))
                continue
            self._claims += 1  # not after a connection error: sent again, it keeps its id
            for error in claim.errors:
                self.log.error("a stream of the queue could not be read", queue=queue, error=error)
            for claimed in claim.jobs:
                self._start(queue, claimed)
            free -= len(claim.jobs)
            total += len(claim.jobs)
            deferred += claim.deferred
            if not claim.jobs:
                newest[queue] = claim.newest
        if refused and not total and not newest:  # every queue refused: back off
            raise refused[0][1]
        for queue, refusal in refused:
            self.log.error(
                "claim failed; claiming from the other queues", queue=queue, error=str(refusal)
            )
        if self._recycling is not None:
            self._recycling.started += total
        return total, newest, deferred

    async def _burst_continues(self) -> bool:
        """In burst mode, with nothing claimable: wait for what may still bring work."""
        if self._running:
            await self._slot_freed.wait()
            return True
        if self._unrecorded:  # a retry may be scheduled once these are recorded
            self._recorded.clear()
            await self._recorded.wait()
            return True
        next_due = -1
        for queue in self.queues:
            promotion = await self.store.jobs.promote(queue)
            if promotion.promoted:
                return True
            if promotion.next_due_ms >= 0:
                due = promotion.next_due_ms
                next_due = due if next_due < 0 else min(next_due, due)
        if self.burst_scheduled and next_due >= 0:
            # A burst never blocks on Redis: it sleeps until the next due time (at most
            # BURST_POLL), since its own attempts may schedule earlier retries meanwhile.
            await asyncio.sleep(min(next_due / 1000, BURST_POLL))
            return True
        return False

    def _start(self, queue: str, claimed: ClaimedJob) -> None:
        token = f"{self.id}/{claimed.attempt}"
        job = RunningJob(queue, claimed.id, claimed.attempt, token, claimed.lost)
        if claimed.suspect:
            job.suspect = True
            self._suspects += 1
        self._running[(queue, claimed.id, token)] = job
        if len(self._running) == 1:  # the flush loop may be waiting for completions only
            self._flush_wanted.set()
        job.task = asyncio.get_running_loop().create_task(self._execute(job, claimed.record))

    async def _execute(self, job: RunningJob, record: bytes) -> None:
        completion = None
        try:
            completion = await run_attempt(
                self.registry,
                job,
                record,
                executor=self._executor,
                echo=self._echo,
                retention_s=self.registry.settings.retention,
                on_overrun=self._record_overrun,
            )
        except asyncio.CancelledError:
            if not (self._handing_back or job.lease_lost):
                raise
        finally:
            del self._running[(job.queue, job.job_id, job.token)]
            if job.suspect and (completion is None or job.lease_lost):
                self._suspects -= 1  # else once its completion is written
            self._slot_freed.set()
        if completion is not None and not job.lease_lost:
            self._take_output(job)
            self._completions[job.queue].append((job, completion))
            self._unrecorded += 1
            self._flush_wanted.set()

    async def _record_overrun(self, job: RunningJob, exc: AttemptTimeout) -> None:
        """A sync handler passed its timeout and its thread still runs: close its attempt as
        timed out now; its slot and lease stay held until the thread returns."""
        self.log.warning(
            "attempt timed out; its sync handler still runs, and the job keeps its slot and "
            "lease until it returns",
            job_id=job.job_id,
            attempt=job.attempt,
        )
        message = f"{exc}; its thread went on running, and the retry waited for it to return"
        try:
            await self.store.leases.record_overrun(
                job.queue, Lease(job.job_id, job.token), type(exc).__qualname__, message
            )
        except Exception as error:  # the attempt's end records the timeout in any case
            self.log.warning("could not record the timeout yet", error=describe(error))

    def _lease_keeper(self, loop: asyncio.AbstractEventLoop) -> LeaseKeeper:
        """The lease keeper, on a connection of its own where jobmaster makes its clients
        (with a client of one's own, such as fakeredis, it renews through the loop)."""
        renew: RenewFn
        if self.registry.uses_default_client():
            client = redis.Redis.from_url(
                self.registry.settings.redis_url,
                socket_timeout=max(self.heartbeat, 1.0),
                socket_connect_timeout=5,
            )
            renewer = LeaseRenewer(client, self.registry.settings.namespace)
            renew, close = renewer.renew, renewer.close
        else:
            close = None

            def renew(
                queue: str, leases: Sequence[Lease], lease_ms: int
            ) -> tuple[list[Lease], list[Lease]]:
                call = self.store.leases.renew(queue, leases, lease_ms)
                return asyncio.run_coroutine_threadsafe(call, loop).result(self.lease)

        return LeaseKeeper(
            renew=renew,
            leases=self._leases,
            on_renewed=self._renewed,
            running=lambda: [job.job_id for job in tuple(self._running.values())],
            interval=self.heartbeat,
            lease_ms=self._lease_ms,
            loop=loop,
            log=self.log,
            close=close,
        )

    def _echo_line(self, level: str, event: str, fields: dict[str, Any]) -> None:
        method = getattr(self.log, level, self.log.info)
        method(event, **fields)

    # -- recording -----------------------------------------------------------------------------

    def _take_output(self, job: RunningJob) -> None:
        if job.ctx is None:
            return
        lines, progress = job.ctx.take_output()
        if lines or progress:
            self._outputs[job.queue].append(Output(job.job_id, job.attempt, lines, progress))

    async def _flush_loop(self) -> None:
        while not self._closing:
            if self._running or self._dropped:  # output is written as it comes
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that races its timeout, and this loop is cancelled at shutdown.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(OUTPUT_INTERVAL):
                        await self._flush_wanted.wait()
                for job in self._running.values():
                    self._take_output(job)
            else:
                await self._flush_wanted.wait()
            self._flush_wanted.clear()
            await self._with_retries("record", self._flush)

    async def _flush(self) -> None:
        """Write pending output, then pending completions, queue by queue.

        Output that Redis refuses for lack of memory is dropped (counted, and said on its
        attempt once there is room): it must not hold up the completions behind it.
        """
        outputs, self._outputs = self._outputs, defaultdict(list)
        completions, self._completions = self._completions, defaultdict(list)
        try:
            full = False
            for queue, batch in list(outputs.items()):
                try:
                    await self.store.leases.record_output(queue, batch)
                except ResponseError as exc:
                    if not is_out_of_memory(exc):
                        raise
                    full = True
                    self._drop_output(queue, batch)
                del outputs[queue]
            for queue, done in list(completions.items()):
                recorded = await self.store.jobs.finish(
                    queue, [c for _, c in done], self._retention_ms
                )
                del completions[queue]
                self._recorded_ends(done, recorded)
            if self._dropped and not full:
                await self._write_drop_notes()
        except BaseException:
            for queue, batch in outputs.items():  # keep what was not written, in order
                self._outputs[queue][:0] = batch
            for queue, done in completions.items():
                self._completions[queue][:0] = done
            raise

    def _recorded_ends(
        self, done: list[tuple[RunningJob, Completion]], recorded: list[int]
    ) -> None:
        """Account for a batch of attempt ends that finish.lua answered for."""
        self.jobs_done += len(done)
        self._unrecorded -= len(done)
        self._recorded.set()
        if self._suspects and any(job.suspect for job, _ in done):
            self._suspects -= sum(job.suspect for job, _ in done)
            self._slot_freed.set()
        for (job, _), outcome in zip(done, recorded, strict=True):
            if outcome == Recorded.LEASE_LOST:
                self.log.warning(
                    "attempt ended after its lease was lost; its result was discarded",
                    job_id=job.job_id,
                    attempt=job.attempt,
                )
            elif outcome != Recorded.RECORDED:
                self.log.error(
                    _NOT_RECORDED[Recorded(outcome)], job_id=job.job_id, attempt=job.attempt
                )

    def _drop_output(self, queue: str, batch: list[Output]) -> None:
        first = not self._dropped
        dropped = self._dropped.drop(queue, batch)
        if first:
            self.log.warning(
                "Redis is full (maxmemory): dropping log lines until it has room; attempts "
                "and their ends are still recorded",
                dropped=dropped,
            )

    async def _write_drop_notes(self) -> None:
        """Tell each attempt that lost log lines how many (Redis has room again)."""
        for queue, notes in self._dropped.notes().items():
            try:
                await self.store.leases.record_output(queue, notes)
            except ResponseError as exc:
                if is_out_of_memory(exc):
                    return
                raise
            self._dropped.clear(queue)
        self.log.info("Redis has room again: log lines are written", dropped=self._dropped.total)

    async def _flush_until_empty(self) -> None:
        for job in self._running.values():
            self._take_output(job)
        if self._outputs or self._completions:
            await self._with_retries("record", self._flush, attempts=len(RETRY_DELAYS))


_NOT_RECORDED = {
    Recorded.CORRUPT_STATUS: "the job's status in Redis could not be read: the job was failed "
    "(CorruptStatus) and this attempt's end was not written",
    Recorded.REPLACED: "Redis refused to record how this attempt ended: it was recorded as "
    "failed (UnrecordableEnd) with Redis's answer",
    Recorded.UNRECORDABLE: "Redis refused to record how this attempt ended, even as a failure: "
    "nothing was written, and the job runs again once its lease expires",
}


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned future's outcome, so that it is not reported as unretrieved."""
    if not future.cancelled():
        future.exception()
