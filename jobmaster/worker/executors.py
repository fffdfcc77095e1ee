"""The executors: start each claimed job's attempt (async handlers in the event loop, sync
ones in the worker's thread pool, ``executor="process"`` ones in child processes), pass how
it ended to the completion writer, and hand back what still runs at shutdown."""

from __future__ import annotations

import asyncio
import functools
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from jobmaster.context import LineEcho
from jobmaster.errors import describe
from jobmaster.ops.middleware import NO_HEADERS, AttemptEnd, AttemptInfo, Hooks
from jobmaster.ops.recorder import AttemptRecorder
from jobmaster.registry import Registry
from jobmaster.store import ClaimedJob, Completion, Lease, Store
from jobmaster.worker.attempt import AttemptTimeout, RunningJob, lease_token, run_attempt
from jobmaster.worker.completions import CompletionWriter
from jobmaster.worker.loops import RETRY_DELAYS, with_retries
from jobmaster.worker.process_executor import preload
from jobmaster.worker.running import RunningAttempts

_monotonic = time.monotonic


class Executors:
    """Runs the attempts of claimed jobs.

    Made when the worker starts: it opens the thread pool (if any handler is sync) and has
    the process handlers' modules preloaded.

    Args:
        registry: the jobs and their handlers.
        store: where a sync handler's overrun is recorded and jobs are handed back.
        running: the worker's running attempts.
        writer: told how each attempt ended.
        worker_id: the prefix of each attempt's lease token.
        concurrency: threads of the pool.
        echo: where handlers' log lines are echoed, if anywhere.
        log: the worker's logger.
        closed: set when the worker closes.
        hooks: the middleware told of each attempt's start and end, if any.
        recorder: told of attempts handed back or whose lease was lost (the worker's
            metrics), if any; it learns of the others from the completion writer.
    """

    def __init__(
        self,
        registry: Registry,
        store: Store,
        running: RunningAttempts,
        writer: CompletionWriter,
        *,
        worker_id: str,
        concurrency: int,
        echo: LineEcho | None,
        log: Any,
        closed: asyncio.Event,
        hooks: Hooks | None = None,
        recorder: AttemptRecorder | None = None,
    ) -> None:
        self._registry = registry
        self._store = store
        self._running = running
        self._writer = writer
        self._worker_id = worker_id
        self._echo = echo
        self._log = log
        self._closed = closed
        self._retention_s = registry.settings.retention
        self._handing_back = False
        self._hooks = hooks if hooks is not None and hooks.wants_attempts else None
        self._on_start = self._attempt_started if self._hooks is not None else None
        self._recorder = recorder
        self._threads: ThreadPoolExecutor | None = None
        if any(not h.is_async for h in registry.jobs.values()):
            self._threads = ThreadPoolExecutor(concurrency, "jobmaster-sync")
        preload([h for h in registry.jobs.values() if h.definition.executor == "process"])

    def start(self, queue: str, claimed: ClaimedJob) -> None:
        """Start the attempt of a claimed job."""
        token = lease_token(self._worker_id, claimed.attempt)
        job = RunningJob(queue, claimed.id, claimed.attempt, token, claimed.lost)
        if claimed.suspect:
            job.suspect = True
        # the attempt's first step is scheduled before anything it wakes
        job.task = asyncio.get_running_loop().create_task(self._execute(job, claimed.record))
        if self._running.add(job):  # the writer may be waiting for completions only
            self._writer.wake()

    def shutdown(self) -> None:
        """Close the thread pool (without waiting for threads that still run)."""
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)

    async def _execute(self, job: RunningJob, record: bytes) -> None:
        completion = None
        try:
            completion = await run_attempt(
                self._registry,
                job,
                record,
                executor=self._threads,
                echo=self._echo,
                retention_s=self._retention_s,
                on_overrun=self._record_overrun,
                on_start=self._on_start,
            )
        except asyncio.CancelledError:
            if not (self._handing_back or job.lease_lost):
                raise
        finally:
            self._running.remove(job, end_pending=completion is not None and not job.lease_lost)
        if completion is not None and not job.lease_lost:
            if self._recorder is not None:  # its metrics read it once the end is recorded
                job.ended = _monotonic()
            if self._hooks is not None:
                self._attempt_ended(self._hooks, job, completion)
            self._writer.add(job, completion)
        elif self._recorder is not None and job.name:  # handed back, or its lease lost
            self._recorder.attempt_abandoned(job)

    def _attempt_started(self, job: RunningJob) -> None:
        """Tell the middleware an attempt starts (only when the registry has some)."""
        job.hooked = self._info(job)
        if self._hooks is not None:
            self._hooks.before_attempt(job.hooked)

    def _info(self, job: RunningJob) -> AttemptInfo:
        return AttemptInfo(
            job.job_id, job.name, job.queue, job.attempt, job.created_ms / 1000, time.time(),
            self._worker_id, job.headers or NO_HEADERS,
        )  # fmt: skip

    def _attempt_ended(self, hooks: Hooks, job: RunningJob, completion: Completion) -> None:
        """Tell the middleware how an attempt ended. One that could not start (its record or
        arguments were invalid) gets no ``after_attempt``, as it got no ``before_attempt``,
        but its job's end still reaches ``on_final``."""
        info = job.hooked
        job.hooked_end = AttemptEnd(
            completion.outcome, completion.next_state, time.monotonic() - job.started,
            completion.error_type, completion.error_message,
        )  # fmt: skip
        if info is not None:
            hooks.after_attempt(info, job.hooked_end)
        else:
            job.hooked = self._info(job)

    async def _record_overrun(self, job: RunningJob, exc: AttemptTimeout) -> None:
        """A sync handler passed its timeout and its thread still runs: close its attempt as
        timed out now; its slot and lease stay held until the thread returns."""
        self._log.warning(
            "attempt timed out; its sync handler still runs, and the job keeps its slot and "
            "lease until it returns",
            job_id=job.job_id,
            attempt=job.attempt,
        )
        message = f"{exc}; its thread went on running, and the retry waited for it to return"
        try:
            await self._store.leases.record_overrun(
                job.queue, Lease(job.job_id, job.token), type(exc).__qualname__, message
            )
        except Exception as error:  # the attempt's end records the timeout in any case
            self._log.warning("could not record the timeout yet", error=describe(error))

    async def drain(self, grace: float, hurry: asyncio.Event) -> None:
        """Let running attempts finish within ``grace`` seconds (or until ``hurry`` is set),
        then hand the rest back."""
        tasks = [job.task for job in self._running.values() if job.task is not None]
        if tasks:
            waits: list[asyncio.Future[Any]] = [
                asyncio.gather(*tasks, return_exceptions=True),
                asyncio.ensure_future(hurry.wait()),
            ]
            await asyncio.wait(waits, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
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
            self._log.warning(
                "waiting for sync handlers to return before handing their jobs back (a thread "
                "cannot be interrupted; executor='process' can be killed)",
                threads=threads,
            )
        await asyncio.gather(*(j.task for j in leftover if j.task), return_exceptions=True)
        by_queue: defaultdict[str, list[Lease]] = defaultdict(list)
        for job in leftover:
            by_queue[job.queue].append(Lease(job.job_id, job.token))
        for queue, leases in by_queue.items():
            await with_retries(  # bounded: if Redis is gone, their leases expire
                "hand back",
                functools.partial(
                    self._store.leases.requeue, queue, leases, "worker shutting down"
                ),
                log=self._log,
                closed=self._closed,
                attempts=len(RETRY_DELAYS),
            )
        self._log.info("handed back running jobs", count=len(leftover))
