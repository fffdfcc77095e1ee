"""JobHandle: what enqueue returns, to wait for a job's result or inspect it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from jobmaster.codec import load_record, pack, unpack
from jobmaster.errors import (
    InvalidState,
    JobCancelled,
    JobFailed,
    JobNotFound,
    ResultExpired,
    redis_errors,
)
from jobmaster.models import CancelOutcome, Job, JobState, Notification
from jobmaster.options import check_priority, delay_to_ms
from jobmaster.payload import pack_arguments
from jobmaster.store.replies import Outcome

if TYPE_CHECKING:
    from jobmaster.registry_view import RegistryView
    from jobmaster.signature import HandlerSignature
    from jobmaster.store import JobOperation, Store

R = TypeVar("R")


class JobHandle(Generic[R]):
    """A reference to one job, usable from any process that knows its id.

    Attributes:
        id: the job's id.
        queue: the queue it was enqueued on.
        created: False when ``enqueue`` found a job with the same id and wrote nothing.
    """

    # no __dict__: enqueue_many makes one handle per job, and each object the garbage
    # collector tracks makes its collections of a large heap come sooner
    __slots__ = ("_signature", "created", "id", "queue", "registry")

    def __init__(
        self,
        registry: RegistryView,
        job_id: str,
        queue: str,
        *,
        created: bool = True,
        signature: HandlerSignature | None = None,
    ) -> None:
        self.registry = registry
        self.id = job_id
        self.queue = queue
        self.created = created
        self._signature = signature

    def __repr__(self) -> str:
        return f"JobHandle(id={self.id!r}, queue={self.queue!r})"

    async def result(self, timeout: float | None = None) -> R:
        """Wait for the job to finish and return its result.

        Waits on the queue's events stream (a blocking read), not by polling.

        Raises:
            JobFailed: the job failed; carries the remote type, message and traceback.
            JobCancelled: the job was cancelled.
            ResultTimeout: ``timeout`` seconds passed first.
            ResultExpired: the job succeeded but its result is no longer kept.
        """
        conn = self.registry.connection()
        with redis_errors(f"waiting for job {self.id}", self.registry.settings.redis_url):
            state = await conn.waiter.wait(self.queue, self.id, timeout)
            succeeded = state is JobState.SUCCEEDED
            raw = await conn.store.inspection.result(self.queue, self.id) if succeeded else None
        if succeeded:
            if raw is None:
                raise ResultExpired(f"job {self.id} succeeded but its result has expired")
            value = unpack(raw)
            signature = self._signature or await self._signature_by_name()
            return signature.decode_result(value) if signature else value  # type: ignore[no-any-return]
        job = await self.info()
        error = job.error
        traceback = next(
            (a.error.traceback for a in reversed(job.attempts) if a.error is not None), None
        )
        kind = JobCancelled if state is JobState.CANCELLED else JobFailed
        raise kind(
            self.id,
            error.type if error else state.value,
            error.message if error else f"the job was {state.value}",
            traceback,
        )

    async def _signature_by_name(self) -> HandlerSignature | None:
        """The signature of the job's handler in this registry (from its record's name)."""
        raw = await self.registry.connection().store.jobs.record(self.queue, self.id)
        handler = self.registry.jobs.get(load_record(raw)["n"]) if raw is not None else None
        return handler.signature if handler is not None else None

    async def info(self) -> Job:
        """The job with its state and every attempt so far."""
        with redis_errors(f"reading job {self.id}", self.registry.settings.redis_url):
            store = self.registry.connection().store
            job = await store.inspection.job(self.queue, self.id)
            if job is not None:
                tries = await store.webhooks.notification_tries(self.queue, self.id)
        if job is None:
            raise JobNotFound(f"no job {self.id!r} in queue {self.queue!r}")
        if tries:
            job = job.model_copy(update={"notifications": [Notification(**t) for t in tries]})
        return job

    async def state(self) -> JobState:
        with redis_errors(f"reading job {self.id}", self.registry.settings.redis_url):
            state = await self.registry.connection().store.inspection.state(self.queue, self.id)
        if state is None:
            raise JobNotFound(f"no job {self.id!r} in queue {self.queue!r}")
        return state

    # -- operations on a job that has not finished ------------------------------------------

    async def cancel(self, reason: str = "cancelled") -> CancelOutcome:
        """Cancel the job, atomically with respect to a worker claiming it.

        Returns:
            ``CANCELLED`` when it was scheduled or queued (it will never run), ``REQUESTED``
            when an attempt was running (async handlers are cancelled through asyncio, sync
            ones see ``ctx.cancelled``, process ones are killed; the job ends cancelled).

        Raises:
            InvalidState: it had already finished (``state`` says how).
        """
        answer = await self._operate(
            "cancel", lambda s: s.control.cancel(self.queue, self.id, reason)
        )
        if answer.outcome is Outcome.DONE:
            return CancelOutcome.CANCELLED
        if answer.outcome is Outcome.REQUESTED:
            return CancelOutcome.REQUESTED
        state = str(answer.state)
        raise InvalidState(f"job {self.id} already finished: it {state}", state)

    async def reschedule(
        self, *, delay: float | timedelta | None = None, at: datetime | None = None
    ) -> JobState:
        """Move a scheduled or queued job to another time (no delay or at: to now).

        Returns the job's new state; raises InvalidState if it already started or finished.
        """
        delay_ms = delay_to_ms(delay, at)
        answer = await self._operate(
            "reschedule", lambda s: s.control.reschedule(self.queue, self.id, delay_ms)
        )
        return self._state_or_raise(answer, "rescheduled")

    async def update(
        self,
        *,
        priority: int | None = None,
        arguments: Mapping[str, Any] | Sequence[Any] | None = None,
    ) -> JobState:
        """Change the priority and/or the arguments (validated again) of a waiting job.

        Raises:
            InvalidArguments: the new arguments do not fit the handler's signature.
            InvalidState: the job already started or finished.
        """
        with redis_errors(f"update of job {self.id}", self.registry.settings.redis_url):
            raw = await self.registry.connection().store.jobs.record(self.queue, self.id)
        if raw is None:
            raise JobNotFound(f"no job {self.id!r} in queue {self.queue!r}")
        record = load_record(raw)
        if arguments is not None:
            handler = self.registry.get(record["n"])
            args, kwargs = ((), arguments) if isinstance(arguments, Mapping) else (arguments, {})
            dumped = handler.signature.encode_call(args, kwargs)
            record["a"] = pack_arguments(
                handler.signature, dumped, self.registry.settings.max_payload
            )
        band = -1
        if priority is not None:
            band = record["p"] = check_priority(priority)
        answer = await self._operate(
            "update", lambda s: s.control.update(self.queue, self.id, pack(record), band)
        )
        return self._state_or_raise(answer, "changed")

    async def retry(self) -> JobState:
        """Run a failed or cancelled job again: a new attempt, its history kept."""
        answer = await self._operate("retry", lambda s: s.control.retry(self.queue, self.id))
        if answer.outcome is Outcome.DONE:
            return JobState.QUEUED
        state = str(answer.state)
        raise InvalidState(
            f"job {self.id} is {state}; only failed or cancelled jobs can be retried", state
        )

    async def delete(self) -> None:
        """Delete the finished job with its attempts, logs and result.

        Raises:
            InvalidState: the job has not finished (cancel it first).
        """
        answer = await self._operate("delete", lambda s: s.control.delete(self.queue, self.id))
        if answer.outcome is not Outcome.DONE:
            state = str(answer.state)
            raise InvalidState(
                f"job {self.id} is {state}; only finished jobs can be deleted (cancel it first)",
                state,
            )

    async def _operate(
        self, what: str, call: Callable[[Store], Awaitable[JobOperation]]
    ) -> JobOperation:
        with redis_errors(f"{what} of job {self.id}", self.registry.settings.redis_url):
            answer = await call(self.registry.connection().store)
        if answer.outcome is Outcome.MISSING:
            raise JobNotFound(f"no job {self.id!r} in queue {self.queue!r}")
        return answer

    def _state_or_raise(self, answer: JobOperation, done: str) -> JobState:
        if answer.outcome is Outcome.DONE and answer.state is not None:
            return answer.state
        state = str(answer.state)
        raise InvalidState(
            f"job {self.id} is {state}; only scheduled or queued jobs can be {done}", state
        )

    def delete_sync(self) -> None:
        self.registry.run_sync(self.delete())

    def cancel_sync(self, reason: str = "cancelled") -> CancelOutcome:
        return self.registry.run_sync(self.cancel(reason))

    def result_sync(self, timeout: float | None = None) -> R:
        """:meth:`result` for synchronous code."""
        return self.registry.run_sync(self.result(timeout))

    def info_sync(self) -> Job:
        """:meth:`info` for synchronous code."""
        return self.registry.run_sync(self.info())

    def state_sync(self) -> JobState:
        return self.registry.run_sync(self.state())
