"""Job definitions and retry policies: what a job is, kept apart from the handler."""

from __future__ import annotations

import random
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from jobmaster.flow_control import FlowControls, parse_rate, parse_resources
from jobmaster.ops.webhooks import Webhook

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$"
QUEUE_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
TAG_PATTERN = r"^[A-Za-z0-9_.:/=+-]{1,64}$"
MAX_TAGS = 16
MAX_DELAY = 10 * 365 * 86400
"""Seconds ahead a job may be scheduled (about ten years), by a delay, a date, a retry's
backoff or ``RetryLater``: beyond, it is a mistake, and beyond about 292 million years it no
longer fits the scripts' integers."""


class Retry(BaseModel):
    """When and how soon a failed attempt is tried again.

    The delay before attempt ``n + 1`` is ``backoff * 2 ** (n - 1)`` seconds, capped at
    ``max_backoff``; with ``jitter`` it is drawn uniformly from the upper half of that
    ("equal jitter"), so retries of many jobs spread out but never come early.

    Args:
        max_attempts: attempts in all, the first one included (1 = never retry).
        backoff: delay before the first retry, in seconds.
        max_backoff: the most any delay grows to, in seconds.
        jitter: randomise each delay within its upper half.
        retry_on: exception types that are retried (default: every Exception).
        dont_retry_on: exception types that are never retried; wins over ``retry_on``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    max_attempts: int = Field(default=3, ge=1, le=1000)
    backoff: float = Field(default=1.0, ge=0, le=MAX_DELAY)
    max_backoff: float = Field(default=300.0, ge=0, le=MAX_DELAY)
    jitter: bool = True
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    dont_retry_on: tuple[type[BaseException], ...] = ()

    @field_validator("retry_on", "dont_retry_on", mode="before")
    @classmethod
    def _exception_types(cls, value: Any) -> Any:
        if isinstance(value, type):
            value = (value,)
        for item in value:
            if not (isinstance(item, type) and issubclass(item, BaseException)):
                raise ValueError(f"expected exception classes, got {item!r}")
        return tuple(value)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = float(min(self.max_backoff, self.backoff * 2.0 ** min(attempt - 1, 60)))
        if self.jitter:
            return base / 2 + random.random() * base / 2
        return base

    def retries(self, exc: BaseException, attempt: int) -> bool:
        """Whether an attempt that raised ``exc`` is followed by another."""
        if attempt >= self.max_attempts:
            return False
        if self.dont_retry_on and isinstance(exc, self.dont_retry_on):
            return False
        return isinstance(exc, self.retry_on)


RETRY_OPTIONS = ("max_attempts", "backoff", "max_backoff", "jitter")
"""The Retry fields that configuration files and variables may set."""


class JobDefinition(BaseModel):
    """Everything about a job except its code; overridable from configuration.

    Args:
        name: the name jobs are enqueued and looked up by.
        queue: the queue its jobs go to unless ``options(queue=...)`` says otherwise.
        priority: 0..9; higher runs first within a queue.
        timeout: seconds an attempt may run before it is cancelled (None: no limit).
        idle_timeout: seconds an attempt may go without progress (``ctx.progress``,
            ``ctx.heartbeat()`` or a log line; for a handler without a Context, since it
            started) before it is cancelled (None: no limit).
        executor: where a sync handler runs: "thread" (the default) or "process" (a
            child process per attempt, for handlers that hold the GIL; it can be killed).
        retry: the retry policy.
        result_ttl: seconds the result is kept (None: as long as the job record).
        tags: labels every job of this definition carries (up to 16, 1-64 characters
            of letters, digits and ``_.:/=+-``), to find jobs by in listings.
        notify: a :class:`Webhook` (or several) told when a job ends (set in code only).
        unique: while a job with the same arguments is scheduled, queued, blocked or
            active, enqueueing another writes nothing and returns that job's handle
            (``created`` False); the key is free again once the job ends.
        unique_key: what makes jobs the same instead of all their arguments: a template
            over the arguments, ``"report:{account}"`` (implies unique).
        unique_for: seconds the unique key stays taken after the job ended (a debounce).
        max_running: attempts of this job running at once over all workers (per
            ``limit_key`` value when given); the others wait in the queue, without holding
            back other jobs.
        limit_key: a template over the arguments (``"{account}"``): max_running and
            rate_limit count per value.
        rate_limit: starts allowed per window over all workers, ``"10/s"`` (also ``/m``,
            ``/h``, ``"5/10s"``): never more in any window of that length.
        resources: what an attempt needs of a worker's advertised resources
            (``{"gpu": 1, "mem": "8G"}``); a worker started with ``--resources`` claims only
            the jobs that fit what it has free.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str = Field(pattern=NAME_PATTERN)
    queue: str = Field(default="default", pattern=QUEUE_PATTERN)
    priority: int = Field(default=0, ge=0, le=9)
    timeout: float | None = Field(default=None, gt=0)
    idle_timeout: float | None = Field(default=None, gt=0)
    executor: Literal["thread", "process"] | None = None
    retry: Retry = Retry()
    result_ttl: float | None = Field(default=None, ge=0)
    tags: tuple[Annotated[str, Field(pattern=TAG_PATTERN)], ...] = Field(
        default=(), max_length=MAX_TAGS
    )
    notify: tuple[Webhook, ...] = ()
    unique: bool = False
    unique_key: str | None = Field(default=None, min_length=1, max_length=500)
    unique_for: float = Field(default=0.0, ge=0, le=MAX_DELAY)
    max_running: int | None = Field(default=None, ge=1, le=1_000_000)
    limit_key: str | None = Field(default=None, min_length=1, max_length=500)
    rate_limit: str | None = None
    resources: dict[str, float] | None = None

    @field_validator("resources", mode="before")
    @classmethod
    def _resources(cls, value: Any) -> Any:
        return None if value is None else parse_resources(value)

    @field_validator("rate_limit")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value is not None:
            parse_rate(value)
        return value

    def controls(self) -> FlowControls:
        """The flow controls of this job (unique keys, limits)."""
        return FlowControls(
            self.name,
            unique=self.unique,
            unique_key=self.unique_key,
            unique_for=self.unique_for,
            max_running=self.max_running,
            limit_key=self.limit_key,
            rate_limit=self.rate_limit,
            resources=tuple(sorted((self.resources or {}).items())),
        )

    @field_validator("notify", mode="before")
    @classmethod
    def _webhooks(cls, value: Any) -> Any:
        if isinstance(value, Webhook):
            return (value,)
        if not isinstance(value, list | tuple) or not all(isinstance(w, Webhook) for w in value):
            raise ValueError(f"notify= takes a jobmaster.Webhook or a list of them, got {value!r}")
        return tuple(value)


OPTIONS = tuple(f for f in JobDefinition.model_fields if f not in ("name", "retry", "notify"))
"""The options a decorator, a configuration table or a variable may set (and retry; a
decorator also sets notify)."""
