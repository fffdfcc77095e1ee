"""The only door to Redis: typed async methods over the Lua scripts.

Every key comes from :mod:`jobmaster.keys`; every state change is one script call
(:mod:`jobmaster.scripts`), batched over many jobs where the caller has many. The parts:
:mod:`.jobs` (the hot path and operations on jobs), :mod:`.schedules`, :mod:`.inspection`,
:mod:`.sessions` (the dashboard's logins), :mod:`.access` (the permissions a worker checks
at start), :mod:`.fleet` (remote commands to workers).
"""

from jobmaster.store.access import AccessCommands
from jobmaster.store.base import ENQUEUE_CHUNK, GROUP
from jobmaster.store.fleet import FleetCommands
from jobmaster.store.inspection import InspectionCommands
from jobmaster.store.jobs import JobCommands
from jobmaster.store.schedules import ScheduleCommands
from jobmaster.store.sessions import SessionCommands
from jobmaster.store.types import (
    Claim,
    ClaimedJob,
    Completion,
    Event,
    Lease,
    NewJob,
    Output,
    Promotion,
    Reclaim,
    Recorded,
    ScheduleFiring,
    ScheduleRecord,
    SchedulerLease,
    TickJob,
)


class Store(
    JobCommands,
    ScheduleCommands,
    InspectionCommands,
    SessionCommands,
    AccessCommands,
    FleetCommands,
):
    """Typed access to one namespace of jobmaster data in one Redis."""


__all__ = [
    "ENQUEUE_CHUNK",
    "GROUP",
    "Claim",
    "ClaimedJob",
    "Completion",
    "Event",
    "Lease",
    "NewJob",
    "Output",
    "Promotion",
    "Reclaim",
    "Recorded",
    "ScheduleFiring",
    "ScheduleRecord",
    "SchedulerLease",
    "Store",
    "TickJob",
]
