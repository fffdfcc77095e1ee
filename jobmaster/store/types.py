"""What goes into and comes out of the store: plain typed records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, NamedTuple

from jobmaster.models import JobState


class NewJob(NamedTuple):
    """A job to create (a named tuple: producers make one per job, and it is built in half
    the time of a frozen dataclass)."""

    id: str
    record: bytes
    band: int
    delay_ms: int = 0


class ClaimedJob(NamedTuple):
    """A job a claim started (a named tuple, as NewJob: one is made per job)."""

    id: str
    attempt: int
    record: bytes
    lost: int = 0
    """Earlier attempts of the job that were lost or handed back (they do not count as
    tries)."""
    suspect: bool = False
    """The job was lost before: its worker takes no other suspect while it holds this one."""


@dataclass(frozen=True, slots=True)
class Claim:
    jobs: list[ClaimedJob]
    newest: list[bytes]
    """When nothing was claimed: the newest entry id of each band, to wait from."""
    errors: list[str] = field(default_factory=list)
    """What Redis said about band streams that could not be read (the others were)."""
    deferred: int = 0
    """Suspect jobs read but left for later (the caller holds a suspect already)."""
    paused: bool = False
    """The queue is paused: nothing was claimed."""
    more: bool = False
    """The claim held back as many jobs over their limits as one call may: claim again
    at once, there may be more to claim."""
    held: int = 0
    """Jobs the claim held back (over a limit, or needing more resources than free)."""


class Recorded(IntEnum):
    """What :meth:`jobmaster.store.Store.finish` did with one ended attempt."""

    LEASE_LOST = 0
    """Nothing was written: another attempt took the job over."""
    RECORDED = 1
    """Written (or written already by the same call, sent again after a lost reply)."""
    CORRUPT_STATUS = 2
    """The job's status could not be read: the job was failed with CorruptStatus."""
    REPLACED = 3
    """Redis refused to record this end: the attempt was recorded as failed instead
    (UnrecordableEnd, with Redis's answer)."""
    UNRECORDABLE = 4
    """Redis refused to record this end, and the failure that would replace it: nothing
    was written (the job runs again once its lease expires)."""


@dataclass(frozen=True, slots=True)
class Lease:
    job_id: str
    token: str


class Completion(NamedTuple):
    """The end of an attempt, as the worker reports it (a named tuple: one is made per job,
    and a frozen dataclass of ten fields costs two and a half times as much to build)."""

    job_id: str
    token: str
    outcome: str
    next_state: str
    delay_ms: int = 0
    result: bytes = b""
    result_ttl_ms: int = -1
    error_type: str = ""
    error_message: str = ""
    traceback: str = ""

    def argv(self) -> tuple[Any, ...]:
        """The values finish.lua reads for this job: five for a success (the common case,
        kept short because every argument costs encoding time), nine otherwise."""
        if self.next_state == "succeeded":
            return ("S", self.job_id, self.token, self.result, self.result_ttl_ms)
        return (
            "E",
            self.job_id,
            self.token,
            self.outcome,
            self.next_state,
            self.delay_ms,
            self.error_type,
            self.error_message,
            self.traceback,
        )


@dataclass(frozen=True, slots=True)
class Output:
    """Log lines and progress of a running attempt, to be appended to its record."""

    job_id: str
    attempt: int
    lines: bytes = b""
    progress: bytes = b""


@dataclass(frozen=True, slots=True)
class Promotion:
    promoted: int
    next_due_ms: int
    """Milliseconds until the next scheduled job is due, -1 when there is none."""
    timers_id: bytes


@dataclass(frozen=True, slots=True)
class Reclaim:
    requeued: list[str]
    failed: list[str]
    next_expiry_ms: int
    """Milliseconds until the next lease expires, -1 when no job is active."""


@dataclass(frozen=True, slots=True)
class Event:
    queue: str
    job_id: str
    state: JobState
    at_ms: int = 0
    """When the change was recorded (the events stream entry's time, ms)."""
    group: bool = False
    """The change is a group's (``job_id`` is the group's id)."""


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A schedule as stored: its definition (msgpack) and its state (JSON, see keys.py)."""

    queue: str
    name: str
    definition: bytes
    state: bytes


@dataclass(frozen=True, slots=True)
class TickJob:
    id: str
    record: bytes
    tick_ms: int


@dataclass(frozen=True, slots=True)
class ScheduleFiring:
    """Jobs to create for one schedule, if it is still at ``revision`` and ``due_ms``;
    ``next_due_ms`` -1 is "run now" (nothing checked, the due time left alone)."""

    name: str
    revision: int
    due_ms: int
    next_due_ms: int
    band: int
    jobs: Sequence[TickJob]
    controls: str = ""
    """The flow controls' line of its jobs (see flow_control.py; empty: none)."""


@dataclass(frozen=True, slots=True)
class SchedulerLease:
    leader: bool
    lease_left_ms: int
    gap_from_ms: int
    gap_to_ms: int
    """The last stretch when no scheduler ran on the queue (0, 0: none yet)."""
    next_due_ms: int
    """Milliseconds until the next schedule is due, -1 when none is."""
    wake_id: bytes
    now_ms: int
    """The server's clock when the lease was taken or renewed."""


class ControlMessage(NamedTuple):
    """One entry of a queue's control stream."""

    queue: str
    command: str
    """"cancel" (a running job's cancellation was requested), "pause" or "resume" (the
    queue was paused or resumed), or what a later version sends (ignored)."""
    job_id: str = ""
    token: str = ""
    """The lease token of the attempt to cancel."""


@dataclass(frozen=True)
class LimitState:
    """One limit key of a queue: its limits, and the jobs it holds now."""

    key: str
    """The job's name, or ``<name>:<value of its limit_key>``."""
    max_running: int | None
    rate: str | None
    """``"<starts>/<window ms>"``, or None."""
    running: int
    """Attempts running now (counted when max_running is set)."""
    waiting: int
    """Queued jobs held back by the limits."""


@dataclass(frozen=True)
class HeldForResources:
    """A queued job held back because the workers that read it had too little free."""

    job_id: str
    needs: dict[str, float]
    fits_a_live_worker: bool
    """Whether some live worker offers that much at all (False: none ever could run it)."""
