"""The only door to Redis's data: typed async methods over the Lua scripts, in parts.

Every key comes from :mod:`jobmaster.keys`; every state change is one script call
(:mod:`jobmaster.scripts`), batched over many jobs where the caller has many; every script's
reply is decoded in :mod:`.replies`. A :class:`Store` holds one part per concept, all built
from one :class:`~jobmaster.store.connection.StoreConnection`:

- ``store.jobs`` (:mod:`.jobs`): enqueue, claim, finish, promotion, pruning, waits.
- ``store.leases`` (:mod:`.leases`): running attempts: leases, hand-backs, reclaim, output.
- ``store.control`` (:mod:`.control`): operations on one job, cancellation requests.
- ``store.schedules`` (:mod:`.schedules`): schedule records, firing, the scheduler lease.
- ``store.inspection`` (:mod:`.inspection`): every read of jobs, queues and events.
- ``store.workers`` (:mod:`.workers`): the heartbeats of live workers.
- ``store.sessions`` (:mod:`.sessions`): the dashboard's logins.
- ``store.access`` (:mod:`.access`): the permissions a worker checks at start.
- ``store.fleet`` (:mod:`.fleet`): remote commands to workers, and their acknowledgements.
- ``store.webhooks`` (:mod:`.webhooks`): webhook deliveries, and the tries on their jobs.
- ``store.limits`` (:mod:`.limits`): paused queues, jobs with unique keys or limits.
- ``store.log_feed`` (:mod:`.log_feed`): log lines of followed jobs, as they are written.
- ``store.relations`` (:mod:`.relations`): dependencies, groups, and each queue's outbox.
- ``store.woken`` (:mod:`.woken_claim`): an idle worker's claim, written behind its
  blocking read.

A new capability gets a part of its own, with its scripts and keys.
"""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis

from jobmaster.store.access import AccessCommands
from jobmaster.store.connection import ENQUEUE_CHUNK, GROUP, StoreConnection
from jobmaster.store.control import ControlCommands
from jobmaster.store.enqueueing import EnqueueRefused
from jobmaster.store.fleet import FleetCommands
from jobmaster.store.inspection import InspectionCommands
from jobmaster.store.jobs import JobCommands
from jobmaster.store.leases import LeaseCommands
from jobmaster.store.limits import LimitCommands
from jobmaster.store.log_feed import LogFeed
from jobmaster.store.relations import RelationCommands
from jobmaster.store.replication import Replication
from jobmaster.store.replies import (
    Fired,
    Firing,
    JobOperation,
    Outcome,
    Saved,
    ScheduleSave,
)
from jobmaster.store.schedules import ScheduleCommands
from jobmaster.store.sessions import SessionCommands
from jobmaster.store.types import (
    Claim,
    ClaimedJob,
    Completion,
    Event,
    Lease,
    LimitState,
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
from jobmaster.store.webhooks import WebhookDeliveries
from jobmaster.store.woken_claim import WokenClaims
from jobmaster.store.workers import WorkerCommands
from jobmaster.transport.clients import FastConnection


class Store:
    """Typed access to one namespace of jobmaster data in one Redis, in parts (its
    arguments are those of :class:`~jobmaster.store.connection.StoreConnection`, which it
    builds and its parts share)."""

    def __init__(
        self,
        redis: Redis,
        namespace: str = "jobmaster",
        *,
        events_maxlen: int = 10_000,
        log_bytes: int = 256 * 1024,
        fast: FastConnection | None = None,
        blocking_reads: Callable[[], FastConnection] | None = None,
        replication: Replication | None = None,
    ) -> None:
        conn = StoreConnection(
            redis,
            namespace,
            events_maxlen=events_maxlen,
            log_bytes=log_bytes,
            fast=fast,
            blocking_reads=blocking_reads,
            replication=replication,
        )
        self.connection = conn
        self.redis = conn.redis
        """redis-py's client (for reads of one's own)."""
        self.keys = conn.keys
        """The key layout of the namespace."""
        self.jobs = JobCommands(conn)
        self.leases = LeaseCommands(conn)
        self.control = ControlCommands(conn)
        self.schedules = ScheduleCommands(conn)
        self.inspection = InspectionCommands(conn)
        self.workers = WorkerCommands(conn)
        self.sessions = SessionCommands(conn)
        self.access = AccessCommands(conn)
        self.fleet = FleetCommands(conn)
        self.webhooks = WebhookDeliveries(conn)
        self.limits = LimitCommands(conn)
        self.log_feed = LogFeed(conn)
        self.relations = RelationCommands(conn)
        self.woken = WokenClaims(conn, self.jobs)

    async def close(self) -> None:
        """Close every connection of the store."""
        await self.connection.close()


__all__ = [
    "ENQUEUE_CHUNK",
    "GROUP",
    "Claim",
    "ClaimedJob",
    "Completion",
    "EnqueueRefused",
    "Event",
    "Fired",
    "Firing",
    "JobOperation",
    "Lease",
    "LimitState",
    "NewJob",
    "Outcome",
    "Output",
    "Promotion",
    "Reclaim",
    "Recorded",
    "Replication",
    "Saved",
    "ScheduleFiring",
    "ScheduleRecord",
    "ScheduleSave",
    "SchedulerLease",
    "Store",
    "StoreConnection",
    "TickJob",
]
