"""The completion writer: records how attempts ended, and their log lines and progress, in
batches per queue (one script call per batch).

Output that Redis refuses for lack of memory is dropped, counted and said on its attempt once
there is room (:mod:`jobmaster.worker.dropped_output`): it must not hold up the ends behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from redis.exceptions import ResponseError

from jobmaster.errors import is_out_of_memory
from jobmaster.ops.middleware import Hooks
from jobmaster.ops.recorder import AttemptRecorder
from jobmaster.store import Completion, Lease, Output, Recorded, Store
from jobmaster.store.webhooks import NewDelivery
from jobmaster.worker.attempt import RunningJob
from jobmaster.worker.dropped_output import DroppedOutput
from jobmaster.worker.loops import RETRY_DELAYS, with_retries
from jobmaster.worker.running import RunningAttempts

OUTPUT_INTERVAL = 0.25
"""How often log lines and progress of running attempts are written."""

_NOT_RECORDED = {
    Recorded.CORRUPT_STATUS: "the job's status in Redis could not be read: the job was failed "
    "(CorruptStatus) and this attempt's end was not written",
    Recorded.REPLACED: "Redis refused to record how this attempt ended: it was recorded as "
    "failed (UnrecordableEnd) with Redis's answer",
    Recorded.UNRECORDABLE: "Redis refused to record how this attempt ended, even as a failure: "
    "nothing was written, and the job runs again once its lease expires",
}


class Outbox(Protocol):
    """Where a batch of ends gets its webhook deliveries (the worker's notifier)."""

    def outbox(self, ended: Sequence[tuple[RunningJob, Completion]]) -> list[NewDelivery]: ...

    def written(self) -> None:
        """Deliveries were written with their ends."""


class CompletionWriter:
    """Writes attempt ends and output as they come, until the worker closes.

    Args:
        store: where they are written.
        running: the worker's running attempts (their output is written as it comes).
        retention_ms: how long finished jobs are kept.
        log: the worker's logger.
        closed: set when the worker closes (the loop ends after its current batch).
        hooks: the middleware told when a job ended (``on_final``), if any.
        outbox: gives the webhook deliveries of each batch of ends, written with them; if
            the worker has webhooks.
    """

    def __init__(
        self,
        store: Store,
        running: RunningAttempts,
        *,
        retention_ms: int,
        log: Any,
        closed: asyncio.Event,
        hooks: Hooks | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        self._store = store
        self._hooks = hooks
        self._outbox = outbox
        self._running = running
        self._retention_ms = retention_ms
        self._log = log
        self._closed = closed
        self._completions: defaultdict[str, list[tuple[RunningJob, Completion]]] = defaultdict(list)
        self._outputs: defaultdict[str, list[Output]] = defaultdict(list)
        self._dropped = DroppedOutput()
        self._wanted = asyncio.Event()
        self.recorded = asyncio.Event()
        """Set when a batch of ends was recorded (a burst worker waits on it)."""
        self.unrecorded = 0
        """Attempts that ended but whose completion is not yet written."""
        self.jobs_done = 0
        """Attempt ends recorded so far."""
        self.recorder: AttemptRecorder | None = None
        """Told of each batch of ends recorded (the worker's metrics), if the worker has one."""
        self._flushing: dict[str, list[tuple[RunningJob, Completion]]] = {}

    def add(self, job: RunningJob, completion: Completion) -> None:
        """An attempt ended: write its end (and its last output) soon."""
        self.take_output(job)
        self._completions[job.queue].append((job, completion))
        self.unrecorded += 1
        self._wanted.set()

    def held(self) -> Iterator[RunningJob]:
        """The attempts that ended and whose end is not recorded yet."""
        for batches in (self._completions, self._flushing):
            for done in batches.values():
                for job, _ in done:
                    yield job

    def wake(self) -> None:
        """Look at the running attempts now (one started, or the worker closes)."""
        self._wanted.set()

    def take_output(self, job: RunningJob) -> None:
        """Queue the log lines and progress ``job`` produced since the last look."""
        if job.ctx is None:
            return
        lines, progress = job.ctx.take_output()
        if lines or progress:
            self._outputs[job.queue].append(Output(job.job_id, job.attempt, lines, progress))

    def add_leases(self, leases: defaultdict[str, list[Lease]]) -> None:
        """Add the leases of ended attempts not yet recorded (from any thread: it copies the
        tables with ``tuple()`` before iterating them)."""
        for queue, done in tuple(self._completions.items()):
            leases[queue].extend(Lease(job.job_id, job.token) for job, _ in tuple(done))

    async def run(self) -> None:
        """Write what comes until the worker closes."""
        while not self._closed.is_set():
            if self._running or self._dropped:  # output is written as it comes
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that races its timeout, and this loop is cancelled at shutdown.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(OUTPUT_INTERVAL):
                        await self._wanted.wait()
                for job in self._running.values():
                    self.take_output(job)
            else:
                await self._wanted.wait()
            self._wanted.clear()
            await with_retries("record", self.flush, log=self._log, closed=self._closed)

    async def flush_until_empty(self) -> None:
        """Write everything pending (at shutdown), with bounded retries."""
        for job in self._running.values():
            self.take_output(job)
        if self._outputs or self._completions:
            await with_retries(
                "record",
                self.flush,
                log=self._log,
                closed=self._closed,
                attempts=len(RETRY_DELAYS),
            )

    async def flush(self) -> None:
        """Write pending output, then pending completions, queue by queue."""
        outputs, self._outputs = self._outputs, defaultdict(list)
        completions, self._completions = self._completions, defaultdict(list)
        self._flushing = completions
        try:
            full = False
            for queue, batch in list(outputs.items()):
                try:
                    await self._store.leases.record_output(queue, batch)
                except ResponseError as exc:
                    if not is_out_of_memory(exc):
                        raise
                    full = True
                    self._drop_output(queue, batch)
                del outputs[queue]
            for queue, done in list(completions.items()):
                outbox = self._outbox.outbox(done) if self._outbox is not None else []
                recorded = await self._store.jobs.finish(
                    queue, [c for _, c in done], self._retention_ms, outbox
                )
                del completions[queue]
                if self.recorder is not None:
                    self.recorder.attempts_recorded(done, recorded)
                if outbox and self._outbox is not None:
                    self._outbox.written()
                self._recorded_ends(done, recorded)
            if self._dropped and not full:
                await self._write_drop_notes()
        except BaseException:
            for queue, batch in outputs.items():  # keep what was not written, in order
                self._outputs[queue][:0] = batch
            for queue, done in completions.items():
                self._completions[queue][:0] = done
            completions.clear()  # held once, by self._completions
            raise

    def _recorded_ends(
        self, done: list[tuple[RunningJob, Completion]], recorded: list[int]
    ) -> None:
        """Account for a batch of attempt ends that finish.lua answered for."""
        self.jobs_done += len(done)
        self.unrecorded -= len(done)
        self.recorded.set()
        if self._running.suspects and any(job.suspect for job, _ in done):
            self._running.recorded_suspects(sum(job.suspect for job, _ in done))
        if self._hooks is not None and self._hooks.wants_final:
            self._final_hooks(self._hooks, done, recorded)
        for (job, _), outcome in zip(done, recorded, strict=True):
            if outcome == Recorded.LEASE_LOST:
                self._log.warning(
                    "attempt ended after its lease was lost; its result was discarded",
                    job_id=job.job_id,
                    attempt=job.attempt,
                )
            elif outcome != Recorded.RECORDED:
                self._log.error(
                    _NOT_RECORDED[Recorded(outcome)], job_id=job.job_id, attempt=job.attempt
                )

    def _final_hooks(
        self, hooks: Hooks, done: list[tuple[RunningJob, Completion]], recorded: list[int]
    ) -> None:
        """Tell the middleware of the jobs that ended with these recorded attempts."""
        for (job, _), outcome in zip(done, recorded, strict=True):
            end = job.hooked_end
            if outcome == Recorded.RECORDED and job.hooked and end is not None and end.final:
                hooks.on_final(job.hooked, end)

    def _drop_output(self, queue: str, batch: list[Output]) -> None:
        first = not self._dropped
        dropped = self._dropped.drop(queue, batch)
        if first:
            self._log.warning(
                "Redis is full (maxmemory): dropping log lines until it has room; attempts "
                "and their ends are still recorded",
                dropped=dropped,
            )

    async def _write_drop_notes(self) -> None:
        """Tell each attempt that lost log lines how many (Redis has room again)."""
        for queue, notes in self._dropped.notes().items():
            try:
                await self._store.leases.record_output(queue, notes)
            except ResponseError as exc:
                if is_out_of_memory(exc):
                    return
                raise
            self._dropped.clear(queue)
        self._log.info("Redis has room again: log lines are written", dropped=self._dropped.total)
