"""JobHandle: what enqueue returns, to wait for a job's result or inspect it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

from jobmaster.codec import unpack
from jobmaster.errors import JobCancelled, JobFailed, JobNotFound, ResultExpired, redis_errors
from jobmaster.models import Job, JobState

if TYPE_CHECKING:
    from jobmaster.registry import Registry
    from jobmaster.signature import HandlerSignature

R = TypeVar("R")


class JobHandle(Generic[R]):
    """A reference to one job, usable from any process that knows its id.

    Attributes:
        id: the job's id.
        queue: the queue it was enqueued on.
        created: False when ``enqueue`` found a job with the same id and wrote nothing.
    """

    def __init__(
        self,
        registry: Registry,
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
            raw = await conn.store.result(self.queue, self.id)
        if state is JobState.SUCCEEDED:
            if raw is None:
                raise ResultExpired(f"job {self.id} succeeded but its result has expired")
            value = unpack(raw)
            signature = self._signature or self._signature_by_name(await self.info())
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

    def _signature_by_name(self, job: Job) -> HandlerSignature | None:
        handler = self.registry.jobs.get(job.name)
        return handler.signature if handler is not None else None

    async def info(self) -> Job:
        """The job with its state and every attempt so far."""
        with redis_errors(f"reading job {self.id}", self.registry.settings.redis_url):
            job = await self.registry.connection().store.job(self.queue, self.id)
        if job is None:
            raise JobNotFound(f"no job {self.id!r} in queue {self.queue!r}")
        return job

    async def state(self) -> JobState:
        with redis_errors(f"reading job {self.id}", self.registry.settings.redis_url):
            state = await self.registry.connection().store.state(self.queue, self.id)
        if state is None:
            raise JobNotFound(f"no job {self.id!r} in queue {self.queue!r}")
        return state

    def result_sync(self, timeout: float | None = None) -> R:
        """:meth:`result` for synchronous code."""
        return self.registry.run_sync(self.result(timeout))

    def info_sync(self) -> Job:
        """:meth:`info` for synchronous code."""
        return self.registry.run_sync(self.info())

    def state_sync(self) -> JobState:
        return self.registry.run_sync(self.state())
