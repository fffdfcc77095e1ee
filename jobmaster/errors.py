"""Every exception jobmaster raises, and the one a handler raises to ask for a retry."""

from __future__ import annotations

from typing import Any

import redis.exceptions


class JobmasterError(Exception):
    """Base of jobmaster's own errors."""


class ConfigError(JobmasterError, ValueError):
    """A setting or job option is unknown or has a bad value."""


class RedisUnavailable(JobmasterError, ConnectionError):
    """Redis did not answer, after the client's bounded retries (3, with backoff)."""


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
    """Turn a lost or refused Redis connection into :class:`RedisUnavailable`.

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


class RetryLater(Exception):
    """Raised by a handler to end this attempt and run the job again after ``delay`` seconds.

    The attempt counts towards ``Retry.max_attempts``; when none are left the job fails.
    """

    def __init__(self, delay: float = 0.0, reason: str = "") -> None:
        if delay < 0:
            raise ValueError(f"RetryLater delay must be >= 0 seconds, got {delay}")
        self.delay = delay
        super().__init__(reason or f"retry requested in {delay:g}s")
