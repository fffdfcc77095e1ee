"""Every script's reply, decoded into a typed result: the only place that reads them.

Each function takes what Redis answered to one script (see the script's header in
``jobmaster/lua`` for its shape) and returns what the store's method returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any, NamedTuple

from jobmaster.models import JobState
from jobmaster.store.types import (
    Claim,
    ClaimedJob,
    ControlMessage,
    Lease,
    Promotion,
    Reclaim,
    SchedulerLease,
)


class Outcome(StrEnum):
    """What an operation on one job (cancel, reschedule, update, retry, delete) did."""

    DONE = "done"
    """Done: ``state`` is the job's state now (None after a delete)."""
    REQUESTED = "requested"
    """Cancel of a running job: its worker is told, and the job ends cancelled."""
    REFUSED = "refused"
    """Not done: the job is in ``state``, where the operation does not apply."""
    MISSING = "missing"
    """No such job."""


@dataclass(frozen=True, slots=True)
class JobOperation:
    """The reply of an operation on one job."""

    outcome: Outcome
    state: JobState | None = None


_MISSING = JobOperation(Outcome.MISSING)


def cancel_reply(raw: bytes) -> JobOperation:
    """cancel.lua: 'cancelled', 'requested', 'finished:<state>' or 'missing'."""
    answer = raw.decode()
    if answer == "cancelled":
        return JobOperation(Outcome.DONE, JobState.CANCELLED)
    if answer == "requested":
        return JobOperation(Outcome.REQUESTED, JobState.ACTIVE)
    if answer == "missing":
        return _MISSING
    return JobOperation(Outcome.REFUSED, JobState(answer.removeprefix("finished:")))


def waiting_job_reply(raw: bytes) -> JobOperation:
    """reschedule.lua and update.lua: the job's state after (done when it is still waiting,
    queued or scheduled: refused otherwise) or 'missing'."""
    answer = raw.decode()
    if answer == "missing":
        return _MISSING
    state = JobState(answer)
    if state in (JobState.QUEUED, JobState.SCHEDULED):
        return JobOperation(Outcome.DONE, state)
    return JobOperation(Outcome.REFUSED, state)


def retry_reply(raw: bytes) -> JobOperation:
    """retry.lua: 'queued', 'refused:<state>' or 'missing'."""
    answer = raw.decode()
    if answer == "queued":
        return JobOperation(Outcome.DONE, JobState.QUEUED)
    if answer == "missing":
        return _MISSING
    return JobOperation(Outcome.REFUSED, JobState(answer.removeprefix("refused:")))


def delete_reply(raw: bytes) -> JobOperation:
    """delete.lua: 'deleted', 'refused:<state>' or 'missing'."""
    answer = raw.decode()
    if answer == "deleted":
        return JobOperation(Outcome.DONE)
    if answer == "missing":
        return _MISSING
    return JobOperation(Outcome.REFUSED, JobState(answer.removeprefix("refused:")))


def claim_reply(reply: Any) -> Claim:
    """claim.lua: {claimed (four values per job), newest ids, errors, deferred, suspects,
    paused, more, held}."""
    claimed, newest, errors, deferred, suspect_ids, paused, more, held = reply
    jobs = [
        ClaimedJob(claimed[i].decode(), claimed[i + 1], claimed[i + 2], claimed[i + 3])
        for i in range(0, len(claimed), 4)
    ]
    if suspect_ids:  # rare: jobs lost before
        named = {s.decode() for s in suspect_ids}
        jobs = [job._replace(suspect=job.id in named) for job in jobs]
    if errors or paused or more or held:
        decoded = [e.decode(errors="replace") for e in errors]
        return Claim(
            jobs, newest, decoded, deferred, paused=bool(paused), more=bool(more), held=held
        )
    return Claim(jobs, newest, deferred=deferred)


def finish_reply(reply: Any) -> list[int]:
    """finish.lua: a :class:`Recorded` value per completion, as a plain integer (compare it
    with the members): on the worker's hot path, no object is made per job."""
    return list(reply)


def renew_reply(leases: Sequence[Lease], reply: Any) -> tuple[list[Lease], list[Lease]]:
    """renew.lua: (leases no longer held, leases whose job's cancellation was requested),
    as 1-based positions in ``leases``."""
    lost, cancel = reply
    return [leases[i - 1] for i in lost], [leases[i - 1] for i in cancel]


def flags_reply(reply: Any) -> list[bool]:
    """requeue.lua (and enqueue.lua per call): 1 or 0 per job."""
    return [bool(r) for r in reply]


def reclaim_reply(reply: Any) -> Reclaim:
    """reclaim.lua: {requeued ids, failed ids, ms until the next lease expires}."""
    requeued, failed, next_expiry = reply
    return Reclaim([i.decode() for i in requeued], [i.decode() for i in failed], int(next_expiry))


def promote_reply(reply: Any) -> Promotion:
    """promote.lua: {promoted, ms until the next is due, the timers stream's newest id}."""
    promoted, next_due, timers_id = reply
    return Promotion(int(promoted), int(next_due), timers_id)


class Saved(IntEnum):
    """What :meth:`jobmaster.store.schedules.ScheduleCommands.save_schedule` did."""

    SAVED = 1
    EXISTED = 0
    """Nothing written: creating a schedule whose name exists."""
    MISSING = -1
    """Nothing written: changing a schedule that does not exist."""
    STALE = -2
    """Nothing written: the schedule's revision was not the one expected."""


class ScheduleSave(NamedTuple):
    outcome: Saved
    revision: int
    """The schedule's revision after (or as found)."""


def save_schedule_reply(reply: Any) -> ScheduleSave:
    """save_schedule.lua: {outcome, revision}."""
    outcome, revision = reply
    return ScheduleSave(Saved(int(outcome)), int(revision))


class Fired(IntEnum):
    """What fire_schedules.lua did with one schedule (nothing is written unless FIRED)."""

    FIRED = 1
    CHANGED = 0
    """The schedule was changed, paused or deleted since it was read."""
    NOT_DUE = -1
    """A tick is not due yet by the server's clock."""


class Firing(NamedTuple):
    outcome: Fired
    created: int
    """How many of the ticks' jobs were created (the others existed)."""


def fire_schedules_reply(reply: Any) -> tuple[list[Firing], int]:
    """fire_schedules.lua: {ms until the next due schedule, then outcome and jobs created
    per schedule}."""
    firings = [Firing(Fired(int(reply[i])), int(reply[i + 1])) for i in range(1, len(reply), 2)]
    return firings, int(reply[0])


def scheduler_lease_reply(reply: Any) -> SchedulerLease:
    """scheduler_lease.lua: {leader, left, gap from, gap to, next due, wake id, now}."""
    leader, left, gap_from, gap_to, next_due, wake_id, now = reply
    return SchedulerLease(
        bool(leader), int(left), int(gap_from), int(gap_to), int(next_due), wake_id, int(now)
    )


def check_access_reply(reply: Any) -> list[str] | None:
    """check_access.lua: the refused commands, or a non-list where Redis cannot tell."""
    if not isinstance(reply, list):
        return None
    return [r.decode() if isinstance(r, bytes) else str(r) for r in reply]


def control_message(queue: str, fields: dict[bytes, bytes]) -> ControlMessage:
    """An entry of a control stream: ``{id, t}`` asks to cancel a running job, ``{q}``
    says that the queue was paused or resumed."""
    command = fields.get(b"q")
    if command is not None:
        return ControlMessage(queue, command.decode(errors="replace"))
    job_id, token = fields.get(b"id"), fields.get(b"t")
    if job_id is None or token is None:
        return ControlMessage(queue, "unknown")
    return ControlMessage(queue, "cancel", job_id.decode(), token.decode())
