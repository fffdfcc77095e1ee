"""The records a user reads: jobs, their attempts, log lines, workers."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict


class JobState(StrEnum):
    """Where a job is in its life; see docs/guarantees.md for the transitions."""

    SCHEDULED = "scheduled"
    """Delayed, or waiting to be retried after a backoff."""
    QUEUED = "queued"
    """In its queue's stream, waiting for a free worker slot."""
    ACTIVE = "active"
    """An attempt is running under a worker's lease."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    """Retries exhausted or the error was not retryable; the job stays inspectable."""
    CANCELLED = "cancelled"
    BLOCKED = "blocked"
    """Waiting on other jobs."""

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


class AttemptOutcome(StrEnum):
    """How one execution of a job ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    LOST = "lost"
    """Its worker died, shut down, or lost its lease before the attempt ended."""


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class ErrorInfo(_Record):
    """An exception raised by a handler (or by jobmaster on its behalf)."""

    type: str
    message: str
    traceback: str | None = None


class LogLine(_Record):
    """One line written through ``ctx.log`` during an attempt."""

    at: datetime
    level: str
    event: str
    fields: dict[str, Any] = {}


class Attempt(_Record):
    """One execution of a job by one worker."""

    number: int
    worker_id: str
    hostname: str
    pid: int
    started_at: datetime
    finished_at: datetime | None = None
    outcome: AttemptOutcome | None = None
    """``None`` while the attempt runs."""
    error: ErrorInfo | None = None
    logs: list[LogLine] = []
    logs_truncated: bool = False
    progress: float | str | None = None


class Job(_Record):
    """One request to run a job definition, with its state and every attempt so far."""

    id: str
    name: str
    queue: str
    state: JobState
    arguments: dict[str, Any]
    priority: int
    created_at: datetime
    scheduled_for: datetime | None = None
    """When a scheduled job becomes due."""
    finished_at: datetime | None = None
    result: Any = None
    error: ErrorInfo | None = None
    attempts: list[Attempt] = []


class JobSummary(_Record):
    """A job as listed by queue and state: the fields an index can give cheaply."""

    id: str
    name: str
    queue: str
    state: JobState
    priority: int
    created_at: datetime
    attempts: int
    error: ErrorInfo | None = None


class WorkerInfo(_Record):
    """A live worker process, as its last heartbeat described it."""

    id: str
    hostname: str
    pid: int
    queues: list[str]
    concurrency: int
    busy: int
    jobs_done: int
    started_at: float
    """Unix time."""
    last_seen: float
    """Unix time of the last heartbeat."""
