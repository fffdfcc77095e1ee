"""Every exception jobmaster raises, and the one a handler raises to ask for a retry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.exceptions

from jobmaster.definition import MAX_DELAY


class JobmasterError(Exception):
    """Base of jobmaster's own errors."""


class ConfigError(JobmasterError, ValueError):
    """A setting or job option is unknown or has a bad value."""


class RedisUnavailable(JobmasterError, ConnectionError):
    """Redis did not answer, after the client's bounded retries (3, with backoff)."""


class RedisFull(RedisUnavailable, redis.exceptions.ResponseError):
    """Redis refused to write: its memory reached ``maxmemory`` and its policy evicts
    nothing (an ``OOM`` reply). Nothing was written by the refused call.

    A :class:`RedisUnavailable` (writes cannot be made now, as when Redis does not answer)
    and a redis-py ``ResponseError`` (what it was before jobmaster named it).

    Attributes:
        handles: for an enqueue, one item per job asked for, in order: the JobHandle of
            the job written, or None where nothing was written. ``enqueue_many`` sends its jobs
            in several atomic script calls, and Redis can fill up between two of them:
            enqueue again only the calls whose item is None. Empty for other operations.
    """

    def __init__(self, message: str, handles: Sequence[Any] = ()) -> None:
        super().__init__(message)
        # OSError.__init__ does not call the next __init__ of the MRO: redis-py's sets fields
        redis.exceptions.ResponseError.__init__(self, message)
        self.handles = list(handles)


class NotReplicated(RedisUnavailable):
    """Redis wrote the call's data, but fewer replicas than ``min_replicas_acked``
    acknowledged it within ``replicas_ack_timeout``: a failover now could lose it (Redis
    replicates asynchronously).

    Attributes:
        acked: how many replicas acknowledged the write.
        handles: for an enqueue, the JobHandle of every job asked for (all were written).
            Enqueueing them again with their ids (``options(job_id=...)``) is safe: an id
            that exists writes nothing.
    """

    def __init__(self, message: str, acked: int, created: Sequence[bool] = ()) -> None:
        super().__init__(message)
        self.acked = acked
        self.created = list(created)
        self.handles: list[Any] = []


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether Redis refused a write for lack of memory (an ``OOM`` error reply; redis-py
    makes it an OutOfMemoryError, the multiplexed connection a ResponseError)."""
    return isinstance(exc, redis.exceptions.OutOfMemoryError) or (
        isinstance(exc, redis.exceptions.ResponseError) and str(exc).startswith("OOM ")
    )


class RedisAccessDenied(JobmasterError, PermissionError):
    """Redis refused jobmaster's credentials, or its user may not run a command jobmaster
    needs (an ACL): trying again cannot help, so a worker stops at start with this error."""


ACCESS_DENIED_REPLIES = ("NOPERM", "WRONGPASS", "NOAUTH", "ERR AUTH")
"""How Redis's error replies start when it refuses a login or a command (ACL)."""


def is_access_denied(exc: BaseException) -> bool:
    """Whether ``exc`` is Redis refusing a login or a command, rather than a fault that may
    pass (a refused connection, a timeout, a restart)."""
    if isinstance(exc, redis.exceptions.AuthenticationError | redis.exceptions.NoPermissionError):
        return True
    return isinstance(exc, redis.exceptions.ResponseError) and str(exc).startswith(
        ACCESS_DENIED_REPLIES
    )


def describe(exc: BaseException) -> str:
    """An exception for a log line: its type and its message, where Redis's text is (the
    ``repr`` of redis-py's exceptions shows only their type)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class redis_errors:  # lower case: used like contextlib.suppress
    """Turn a lost or refused Redis connection into :class:`RedisUnavailable`, and Redis
    out of memory into :class:`RedisFull`: every call to Redis from the public API goes
    through it.

    A class rather than a ``@contextmanager`` generator: it wraps every enqueue, and
    entering and leaving it costs a fraction of a generator's."""

    __slots__ = ("url", "what")

    def __init__(self, what: str, url: str) -> None:
        self.what = what
        self.url = url

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
            raise RedisUnavailable(
                f"{self.what}: Redis at {safe_url(self.url)} did not answer ({exc})"
            ) from exc
        if exc is not None and is_out_of_memory(exc):
            raise RedisFull(f"{self.what}: {full(self.url)} ({exc})") from exc


def full(url: str) -> str:
    """What :class:`RedisFull` says of Redis."""
    return (
        f"Redis at {safe_url(url)} is full: its memory reached maxmemory and its policy evicts "
        f"nothing, so it refuses writes until memory is freed or maxmemory raised"
    )


def safe_url(url: str) -> str:
    """A Redis URL without its password (for messages and logs)."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest


class InvalidArguments(JobmasterError, ValueError):
    """A job was called with arguments that do not fit its handler's signature.

    Nothing was written to Redis.
    """


class UnknownJob(JobmasterError, LookupError):
    """No job of that name is registered."""


class JobNotFound(JobmasterError, LookupError):
    """No job with that id exists (it never did, or its retention has passed)."""


class InvalidState(JobmasterError):
    """The operation does not apply to the job in its current state (e.g. rescheduling a job
    that is already running); ``state`` says which state it was in."""

    def __init__(self, message: str, state: str) -> None:
        super().__init__(message)
        self.state = state


class ResultTimeout(JobmasterError, TimeoutError):
    """The job did not finish within the time given to ``result()``."""


class JobFailed(JobmasterError):
    """The job ended failed (or cancelled); carries the remote error.

    Attributes:
        job_id: the job's id.
        error_type: the exception's class name in the worker.
        error_message: its message.
        remote_traceback: the traceback as the worker formatted it.
    """

    def __init__(
        self, job_id: str, error_type: str, error_message: str, remote_traceback: str | None
    ) -> None:
        self.job_id = job_id
        self.error_type = error_type
        self.error_message = error_message
        self.remote_traceback = remote_traceback
        super().__init__(f"job {job_id} failed: {error_type}: {error_message}")

    def __str__(self) -> str:
        text = super().__str__()
        if self.remote_traceback:
            text += "\n\nRemote traceback:\n" + self.remote_traceback.rstrip()
        return text


class JobCancelled(JobFailed):
    """The job was cancelled before it could succeed."""


class ResultExpired(JobmasterError, LookupError):
    """The job succeeded but its result's time to live has passed."""


class ScheduleNotFound(JobmasterError, LookupError):
    """No schedule has that name."""


class ScheduleExists(JobmasterError):
    """A schedule with that name exists already (use update_schedule to change it)."""


class RateLimited(Exception):
    """Raised by a handler when what it calls refuses it for now (an API's HTTP 429): the
    job runs again after ``retry_after`` seconds, and this attempt does not count towards
    ``Retry.max_attempts`` (it is recorded with outcome ``rate_limited``)."""

    def __init__(self, retry_after: float = 1.0, reason: str = "") -> None:
        if not 0 <= retry_after <= MAX_DELAY:  # NaN too
            raise ValueError(
                f"RateLimited retry_after must be from 0 to {MAX_DELAY:,} seconds, got "
                f"{retry_after}"
            )
        self.retry_after = retry_after
        super().__init__(reason or f"rate limited; running again in {retry_after:g}s")


class RetryLater(Exception):
    """Raised by a handler to end this attempt and run the job again after ``delay`` seconds.

    The attempt counts towards ``Retry.max_attempts``; when none are left the job fails.
    """

    def __init__(self, delay: float = 0.0, reason: str = "") -> None:
        if not 0 <= delay <= MAX_DELAY:  # NaN too
            raise ValueError(
                f"RetryLater delay must be from 0 to {MAX_DELAY:,} seconds (about ten years), "
                f"got {delay}"
            )
        self.delay = delay
        super().__init__(reason or f"retry requested in {delay:g}s")
