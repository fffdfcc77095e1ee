"""The records a user reads: jobs, their attempts, log lines, workers."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import VERSION, BaseModel, ConfigDict


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


class CancelOutcome(StrEnum):
    """What ``cancel()`` did."""

    CANCELLED = "cancelled"
    """The job was scheduled or queued: it will never run."""
    REQUESTED = "requested"
    """An attempt was running: its worker is told to stop it, and the job then ends
    cancelled (unless the attempt finished first; its final state says which)."""


class AttemptOutcome(StrEnum):
    """How one execution of a job ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    LOST = "lost"
    """Its worker died, shut down, or lost its lease before the attempt ended."""
    RATE_LIMITED = "rate_limited"
    """The handler raised :class:`~jobmaster.RateLimited`: the job runs again later, and
    this attempt does not count as a try."""


# Most processes never read a record, so their validators are built on first use where
# pydantic does that thread-safely (2.14 and later), else at import.
_DEFER_BUILD = tuple(int(part) for part in VERSION.split(".")[:2]) >= (2, 14)


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=_DEFER_BUILD)


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


class JobLogLine(LogLine):
    """A log line with the job and attempt that wrote it (from :meth:`Registry.logs` and
    :meth:`Registry.search_logs`)."""

    job_id: str
    attempt: int


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


class Notification(_Record):
    """One try of a webhook delivery about a job (see :class:`jobmaster.Webhook`)."""

    delivery: str
    """The delivery's id (the same for every try of one delivery)."""
    url: str
    number: int
    """The try's number within its delivery, from 1."""
    at: datetime
    ok: bool
    """Whether the receiver answered with a 2xx status."""
    status: int | None = None
    """The HTTP status of the answer (None: none came)."""
    error: str | None = None
    final: bool = False
    """No other try of this delivery follows (it succeeded, or it was given up)."""


HeldBack = Literal["limit", "resources"]
"""Why a queued job is held back (see :attr:`Job.held_back`)."""


class Job(_Record):
    """One request to run a job definition, with its state and every attempt so far."""

    id: str
    name: str
    queue: str
    state: JobState
    arguments: dict[str, Any]
    priority: int
    created_at: datetime
    tags: list[str] = []
    scheduled_for: datetime | None = None
    """When a scheduled job becomes due."""
    held_back: HeldBack | None = None
    """Why a queued job that a worker read waits off its stream: ``"limit"`` (its
    ``max_running`` or ``rate_limit`` had no room; it starts once they have) or
    ``"resources"`` (it needs more ``resources=`` than the worker had free; a worker with
    room starts it). None otherwise."""
    finished_at: datetime | None = None
    result: Any = None
    error: ErrorInfo | None = None
    attempts: list[Attempt] = []
    notifications: list[Notification] = []
    """Each try of the webhook deliveries about this job, oldest first."""
    blocked_by: list[str] = []
    """The ids of the jobs (or of the group) a blocked job still waits on."""
    group_id: str | None = None
    """The group the job is a member of (or the callback of)."""


class JobSummary(_Record):
    """A job as listed by queue and state: the fields an index can give cheaply."""

    id: str
    name: str
    queue: str
    state: JobState
    priority: int
    created_at: datetime
    tags: list[str] = []
    attempts: int
    error: ErrorInfo | None = None
    held_back: HeldBack | None = None
    """As :attr:`Job.held_back`: ``"limit"``, ``"resources"`` or None."""


class JobEvent(_Record):
    """A job changed state (from :meth:`Registry.events`)."""

    queue: str
    job_id: str
    state: JobState
    at: datetime
    group: bool = False
    """The change is a group's: ``job_id`` is the group's id, and ``state`` the state it
    reached (succeeded, failed or cancelled)."""


class QueueStats(_Record):
    """A queue at a glance (from :meth:`Registry.queue_stats`).

    ``succeeded`` and ``failed`` count the jobs that finished in each bucket, oldest bucket
    first, the last one ending now; they are read from the jobs still kept (the retention).
    """

    queue: str
    counts: dict[JobState, int]
    oldest_waiting_at: datetime | None
    bucket_seconds: int
    bucket_starts: list[datetime]
    succeeded: list[int]
    failed: list[int]


class GpuTelemetry(_Record):
    """One GPU of a worker's host (listed when ``nvidia-ml-py`` is installed)."""

    index: int
    name: str
    utilization_percent: float
    memory_used_bytes: int
    memory_total_bytes: int


class WorkerTelemetry(_Record):
    """A worker's process and host figures, sampled at each heartbeat.

    Rates are averaged since the previous heartbeat; CPU percentages of the process may pass
    100 when it uses several cores.
    """

    cpu_percent: float
    """The worker process's CPU use."""
    rss_bytes: int
    """The worker process's resident memory."""
    host_cpu_percent: float
    host_memory_percent: float
    load_avg: tuple[float, float, float]
    """The host's load average over 1, 5 and 15 minutes."""
    disk_read_bytes_per_second: float
    disk_write_bytes_per_second: float
    net_sent_bytes_per_second: float
    net_recv_bytes_per_second: float
    gpus: list[GpuTelemetry] = []


WorkerState = Literal["running", "paused", "draining"]
"""What a worker does: takes jobs, takes none until resumed, or takes none and exits once
the jobs it runs have ended."""


class WorkerCommandResult(_Record):
    """The outcome of a remote command (pause, resume, drain, stop) for one worker."""

    worker_id: str
    command: Literal["pause", "resume", "drain", "stop"]
    delivered: bool
    """Whether the worker acknowledged the command."""
    state: WorkerState | None = None
    """The worker's state after the command (None when it was not delivered)."""
    detail: str = ""
    """Why the command was not delivered."""


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
    state: WorkerState = "running"
    running: list[str] = []
    """The ids of the jobs it runs now."""
    telemetry: WorkerTelemetry | None = None
    """Its process's and host's figures (None from a worker that did not send any)."""
    resources: dict[str, float] | None = None
    """What it offers jobs that declare ``resources=`` (None: no limit, every job fits)."""


class Schedule(_Record):
    """A schedule: a cron expression or an interval that enqueues one job with fixed arguments.

    Ticks of a cron schedule are computed by croniter in ``tz`` (DST as croniter handles
    it); ticks of an interval schedule fall on multiples of ``every`` seconds since the Unix
    epoch. Ticks that fell due while no scheduler ran follow ``catch_up``: "skip" them,
    run the "latest" one, or run "all" of them (the most recent ``catch_up_limit``).
    """

    name: str
    job: str
    queue: str
    cron: str | None = None
    every: float | None = None
    """Seconds between ticks."""
    tz: str = "UTC"
    args: dict[str, Any] = {}
    catch_up: Literal["skip", "latest", "all"] = "latest"
    catch_up_limit: int = 100
    priority: int = 0
    paused: bool = False
    next_run_at: datetime | None = None
    """The next tick (None while paused)."""
    last_run_at: datetime | None = None
    """The tick of the last job this schedule enqueued (for "run now": when it ran)."""
    last_job_id: str | None = None
    last_job_state: JobState | None = None
    """None when there is no last job, or it is past its retention."""
    source: Literal["code", "api"] = "api"
    """"code" (declared in the application, synced at worker start) or "api"."""
