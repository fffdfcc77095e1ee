"""Running one attempt of one job, and turning how it ended into a Completion."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import time
import traceback
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobmaster.codec import DecodeError, load_record, pack
from jobmaster.context import Context, LineEcho
from jobmaster.definition import JobDefinition
from jobmaster.errors import InvalidArguments, RateLimited, RetryLater
from jobmaster.groups import group_context
from jobmaster.models import AttemptOutcome, JobState
from jobmaster.ops.middleware import AttemptEnd, AttemptInfo
from jobmaster.records import decode_arguments
from jobmaster.store import Completion
from jobmaster.worker.process_executor import ProcessHandlerError, run_in_process

if TYPE_CHECKING:
    from jobmaster.handler import JobHandler
    from jobmaster.registry import Registry


class AttemptTimeout(TimeoutError):
    """The attempt ran longer than its job's timeout."""


OverrunHook = Callable[["RunningJob", AttemptTimeout], Awaitable[None]]
"""Told when a sync handler passed its timeout and its thread still runs."""


class IdleTimeout(AttemptTimeout):
    """The attempt made no progress for longer than its job's idle_timeout."""


class Cancelled(Exception):
    """Someone cancelled the job while this attempt ran."""


def lease_token(worker_id: str, attempt: int) -> str:
    """The token of the lease a worker's claim took for an attempt."""
    return f"{worker_id}/{attempt}"


@dataclass(slots=True)
class RunningJob:
    """A job this worker holds the lease of."""

    queue: str
    job_id: str
    attempt: int
    token: str
    lost: int = 0
    """Earlier attempts that were lost or handed back: they do not use up the retry
    policy's attempts."""
    suspect: bool = False
    """The job was lost before (see claim.lua): its worker runs no other suspect meanwhile."""
    name: str = ""
    ctx: Context | None = None
    task: asyncio.Task[None] | None = None
    lease_lost: bool = False
    idle_timeout: float | None = None
    started: float = field(default_factory=time.monotonic)
    abort: Exception | None = None
    """Why the worker cancelled the attempt, when it did so to end it (not to hand it back):
    an AttemptTimeout, or a CancelRequested."""
    in_thread: bool = False
    """Its handler runs in a thread of the worker, which nothing can interrupt."""
    created_ms: int = 0
    """When the job was enqueued (Unix time, ms)."""
    headers: dict[str, str] | None = None
    """What the enqueue's middleware put in the job's record."""
    group: list[Any] | None = None
    """[group id, group's queue, index (-1: the callback)] of a group's job."""
    hooked: AttemptInfo | None = None
    """The attempt as the middleware saw it start (None without middleware)."""
    hooked_end: AttemptEnd | None = None
    ended: float = 0.0
    """When the attempt ended (``time.monotonic()``), read by the worker's metrics (0.0:
    not noted, the worker has none)."""

    @property
    def last_activity(self) -> float:
        return self.ctx.last_activity if self.ctx is not None else self.started

    def end(self, reason: Exception) -> None:
        """End the attempt from outside its handler: cancel it and record ``reason``."""
        self.abort = reason
        if self.ctx is not None:
            self.ctx.cancelled.set()
        if self.task is not None:
            self.task.cancel()


def failed(
    job: RunningJob,
    exc: BaseException,
    definition: JobDefinition | None,
    *,
    outcome: AttemptOutcome = AttemptOutcome.FAILED,
    retryable: bool = True,
) -> Completion:
    """The completion of an attempt that raised: retried later, or the job fails."""
    delay = 0.0
    retry = False
    error_type = type(exc).__qualname__
    trace = "".join(traceback.format_exception(exc))
    if isinstance(exc, ProcessHandlerError):  # raised in a child: decided there
        error_type, trace = exc.type_name, exc.remote_traceback
    if isinstance(exc, RateLimited) and retryable:  # not a try: back after its delay
        retry, delay, outcome = True, exc.retry_after, AttemptOutcome.RATE_LIMITED
    elif definition is not None and retryable:
        policy = definition.retry
        tries = job.attempt - job.lost
        if isinstance(exc, RetryLater):
            retry, delay = tries < policy.max_attempts, exc.delay
        elif isinstance(exc, ProcessHandlerError):
            retry, delay = exc.retry, policy.delay(tries)
        elif policy.retries(exc, tries):
            retry, delay = True, policy.delay(tries)
    return Completion(
        job_id=job.job_id,
        token=job.token,
        outcome=outcome.value,
        next_state=(JobState.SCHEDULED if retry else JobState.FAILED).value,
        delay_ms=int(delay * 1000),
        error_type=error_type,
        error_message=str(exc),
        traceback=trace,
    )


def cancelled(job: RunningJob, exc: Cancelled) -> Completion:
    """The completion of an attempt ended by a cancellation: the job ends cancelled."""
    return Completion(
        job_id=job.job_id,
        token=job.token,
        outcome=AttemptOutcome.CANCELLED.value,
        next_state=JobState.CANCELLED.value,
        error_type="Cancelled",
        error_message=str(exc),
    )


async def run_attempt(
    registry: Registry,
    job: RunningJob,
    record: bytes,
    *,
    executor: Executor | None,
    echo: LineEcho | None,
    retention_s: float,
    on_overrun: OverrunHook | None = None,
    on_start: Callable[[RunningJob], None] | None = None,
) -> Completion:
    """Decode, validate and run one claimed job; every way it can end becomes a Completion.

    A sync handler's thread cannot be stopped: past its timeout, ``on_overrun`` is told (to
    record the attempt as timed out), and the attempt ends only once the thread returned, so
    that its retry never runs beside it. ``on_start`` is told once the call was validated.
    """
    prepared = _prepare(registry, job, record)
    if isinstance(prepared, Completion):
        return prepared
    if on_start is not None:
        on_start(job)
    handler, arguments, positional, keywords = prepared
    definition = handler.definition
    if handler.signature.takes_context:
        job.ctx = _context(registry, job, echo)
        positional.insert(0, job.ctx)
    job.idle_timeout = definition.idle_timeout
    in_process = definition.executor == "process"
    try:
        if in_process:  # the child validates and encodes; the value is already wire data
            call = [handler, arguments, job.attempt - job.lost]
            value = await _run_async(run_in_process, call, {}, definition.timeout)
        elif handler.is_async:
            value = await _run_async(handler.fn, positional, keywords, definition.timeout)
        else:
            job.in_thread = True
            overrun = None if on_overrun is None else functools.partial(on_overrun, job)
            value = await _run_sync(
                handler.fn, positional, keywords, definition.timeout, executor, job.ctx, overrun
            )
    except AttemptTimeout as exc:
        return failed(job, exc, definition, outcome=AttemptOutcome.TIMED_OUT)
    except asyncio.CancelledError:
        if job.abort is None:
            raise  # handed back, or its lease was lost
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        if isinstance(job.abort, Cancelled):
            return cancelled(job, job.abort)
        return failed(job, job.abort, definition, outcome=AttemptOutcome.TIMED_OUT)
    except Exception as exc:
        return failed(job, exc, definition)
    return _succeeded(job, handler, value, retention_s, encoded=in_process)


def _context(registry: Registry, job: RunningJob, echo: LineEcho | None) -> Context:
    """The context of an attempt (with its group's, for a group's job)."""
    ctx = Context(job.job_id, job.name, job.queue, job.attempt, echo)
    if job.group is not None:
        ctx.group = group_context(registry, job.group)
    return ctx


def _prepare(
    registry: Registry, job: RunningJob, record: bytes
) -> Completion | tuple[JobHandler[Any, Any], dict[str, Any], list[Any], dict[str, Any]]:
    """The handler and validated call of a claimed job, or the completion that fails it."""
    try:
        data = load_record(record)
        job.name = data["n"]
        job.created_ms = data.get("c", 0)
        job.headers = data.get("h")
        job.group = data.get("g")
        arguments = decode_arguments(data)
    except (DecodeError, KeyError, TypeError) as exc:
        return failed(job, DecodeError(f"job payload could not be decoded: {exc}"), None)
    handler = registry.jobs.get(job.name)
    if handler is None:
        known = ", ".join(sorted(registry.jobs)) or "(none)"
        error = LookupError(f"no handler named {job.name!r} in this worker; it has: {known}")
        return failed(job, error, None)
    signature = handler.signature
    try:
        positional, keywords = signature.call_arguments(signature.validate(arguments))
    except InvalidArguments as exc:
        return failed(job, exc, handler.definition, retryable=False)
    return handler, arguments, positional, keywords


# read once: an enum's .value is a property lookup, and this is every job's path
_NONE = pack(None)
_SUCCEEDED_OUTCOME: str = AttemptOutcome.SUCCEEDED.value
_SUCCEEDED_STATE: str = JobState.SUCCEEDED.value


def _succeeded(
    job: RunningJob,
    handler: JobHandler[Any, Any],
    value: Any,
    retention_s: float,
    *,
    encoded: bool,
) -> Completion:
    """The completion of an attempt that returned ``value`` (already wire data if
    ``encoded``)."""
    definition = handler.definition
    try:
        if value is None:
            result = _NONE
        else:
            result = pack(value if encoded else handler.signature.encode_result(value))
    except Exception as exc:
        unstorable = TypeError(f"the result of {job.name} cannot be stored: {exc}")
        return failed(job, unstorable, definition, retryable=False)
    ttl = definition.result_ttl
    return Completion(
        job_id=job.job_id,
        token=job.token,
        outcome=_SUCCEEDED_OUTCOME,
        next_state=_SUCCEEDED_STATE,
        result=result,
        result_ttl_ms=-1 if ttl is None or ttl >= retention_s else int(ttl * 1000),
    )


async def _run_async(
    fn: Any, positional: list[Any], keywords: dict[str, Any], timeout: float | None
) -> Any:
    if timeout is None:
        return await fn(*positional, **keywords)
    try:
        async with asyncio.timeout(timeout) as scope:
            return await fn(*positional, **keywords)
    except TimeoutError:
        if scope.expired():
            raise AttemptTimeout(f"the attempt exceeded its timeout of {timeout:g}s") from None
        raise


async def _run_sync(
    fn: Any,
    positional: list[Any],
    keywords: dict[str, Any],
    timeout: float | None,
    executor: Executor | None,
    ctx: Context | None,
    on_overrun: Callable[[AttemptTimeout], Awaitable[None]] | None = None,
) -> Any:
    if executor is None:
        raise RuntimeError("a sync handler needs the worker's thread pool")
    thread = executor.submit(fn, *positional, **keywords)
    future = asyncio.wrap_future(thread)
    try:
        if timeout is None:
            return await future
        done, _ = await asyncio.wait({future}, timeout=timeout)
        if done:
            return future.result()
        # A thread cannot be stopped from outside: the handler is told to stop through
        # ctx.cancelled, the attempt is recorded as timed out now, and it ends (its retry
        # is scheduled) once the thread returns.
        exc = AttemptTimeout(f"the attempt exceeded its timeout of {timeout:g}s")
        if ctx is not None:
            ctx.cancelled.set()
        if on_overrun is not None:
            await on_overrun(exc)
        raise exc
    except BaseException:
        if ctx is not None:
            ctx.cancelled.set()
        await _returned(thread)
        raise


async def _returned(thread: concurrent.futures.Future[Any]) -> None:
    """Wait until a handler's thread returned, through any cancellation (the attempt keeps
    its slot and lease until then; the cancellation is raised by the caller afterwards)."""
    if thread.done():
        return
    waiter = asyncio.wrap_future(thread)
    while not waiter.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({waiter})
