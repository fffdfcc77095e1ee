"""The only module that talks to Redis: typed async methods over the Lua scripts.

Every key comes from :mod:`jobmaster.keys`; every state change is one script call
(:mod:`jobmaster.scripts`), batched over many jobs where the caller has many.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from jobmaster.codec import load_json, pack, unpack
from jobmaster.keys import Keys, QueueKeys, attempt_field
from jobmaster.models import Attempt, Job, JobState, JobSummary, WorkerInfo
from jobmaster.records import (
    attempt_count,
    decode_attempt,
    decode_job,
    decode_summary,
    status_state,
)
from jobmaster.scripts import Scripts

GROUP = "workers"
"""The consumer group every worker of every queue belongs to."""

ENQUEUE_CHUNK = 1000
"""Jobs per enqueue script call: large batches are split so no call blocks Redis long."""

_ASCENDING_STATES = frozenset({JobState.SCHEDULED})


@dataclass(frozen=True, slots=True)
class NewJob:
    id: str
    record: bytes
    band: int
    delay_ms: int = 0


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    id: str
    attempt: int
    record: bytes
    lost: int = 0
    """Earlier attempts of the job that were lost (they do not count as tries)."""


@dataclass(frozen=True, slots=True)
class Claim:
    jobs: list[ClaimedJob]
    newest: list[bytes]
    """When nothing was claimed: the newest entry id of each band, to wait from."""


@dataclass(frozen=True, slots=True)
class Lease:
    job_id: str
    token: str


@dataclass(frozen=True, slots=True)
class Completion:
    """The end of an attempt, as the worker reports it."""

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
        return (
            self.job_id,
            self.token,
            self.outcome,
            self.next_state,
            self.delay_ms,
            self.result,
            self.result_ttl_ms,
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


class _QueueKeyLists:
    """The KEYS list of every script for one queue, computed once."""

    def __init__(self, k: QueueKeys) -> None:
        idx = k.index
        s = k.streams
        self.enqueue = (k.jobs, k.status, idx("queued"), idx("scheduled"), k.events, k.timers)
        self.streams = s
        self.claim = (
            k.jobs, k.status, idx("queued"), idx("active"), k.attempts, k.events, idx("failed"), *s,
        )  # fmt: skip
        self.finish = (
            k.jobs, k.status, idx("active"), idx("scheduled"), k.attempts, k.logs, k.progress,
            k.results, k.result_expiry, k.events, k.timers, idx("succeeded"), idx("failed"),
            idx("cancelled"), *s,
        )  # fmt: skip
        self.promote = (k.status, idx("scheduled"), idx("queued"), k.events, k.timers, *s)
        self.requeue = (
            k.status, idx("active"), idx("queued"), k.attempts, k.events, *s, idx("cancelled"),
        )  # fmt: skip
        self.cancel = (
            k.status, idx("queued"), idx("scheduled"), idx("cancelled"), k.events, k.control, *s,
        )  # fmt: skip
        self.reschedule = (k.status, idx("queued"), idx("scheduled"), k.events, k.timers, *s)
        self.update = (k.jobs, k.status, k.events, *s)
        self.retry = (k.status, idx("queued"), idx("failed"), idx("cancelled"), k.events, *s)
        self.reclaim = (
            k.status, idx("active"), idx("queued"), k.attempts, k.events, idx("failed"), *s,
            idx("cancelled"),
        )  # fmt: skip
        self.renew = (k.status, idx("active"))
        self.prune = (
            k.jobs, k.status, k.attempts, k.logs, k.progress, k.results, k.result_expiry,
            idx("succeeded"), idx("failed"), idx("cancelled"),
        )  # fmt: skip
        self.record_output = (k.logs, k.progress)
        self.save_schedule = (k.schedules, k.schedule_state, k.schedule_due, k.schedule_wake)
        self.fire_schedules = (
            k.schedule_state, k.schedule_due, k.jobs, k.status, idx("queued"), k.events, *s,
        )  # fmt: skip
        self.scheduler_lease = (k.scheduler_lease, k.scheduler, k.schedule_due, k.schedule_wake)


class Store:
    """Typed access to one namespace of jobmaster data in one Redis."""

    def __init__(
        self,
        redis: Redis,
        namespace: str = "jobmaster",
        *,
        events_maxlen: int = 10_000,
        log_bytes: int = 256 * 1024,
    ) -> None:
        self.redis = redis
        self.keys = Keys(namespace)
        self.events_maxlen = events_maxlen
        self.log_bytes = log_bytes
        self._scripts = Scripts(redis)
        self._key_lists: dict[str, _QueueKeyLists] = {}
        self._known_queues: set[str] = set()

    def _k(self, queue: str) -> _QueueKeyLists:
        lists = self._key_lists.get(queue)
        if lists is None:
            lists = self._key_lists[queue] = _QueueKeyLists(self.keys.queue(queue))
        return lists

    async def close(self) -> None:
        await self.redis.aclose()

    # -- producing ---------------------------------------------------------------------------

    async def enqueue(self, queue: str, jobs: Sequence[NewJob]) -> list[bool]:
        """Create jobs; for each, False when its id already existed (nothing written)."""
        if not jobs:
            return []
        lists = self._k(queue)
        script = self._scripts.enqueue
        chunks = [jobs[i : i + ENQUEUE_CHUNK] for i in range(0, len(jobs), ENQUEUE_CHUNK)]
        if len(chunks) == 1 and queue in self._known_queues:
            created = await script(*self._enqueue_call(lists, chunks[0]))
            return [bool(c) for c in created]
        async with self.redis.pipeline(transaction=False) as pipe:
            if queue not in self._known_queues:
                pipe.sadd(self.keys.queues, queue)
            for chunk in chunks:
                await script(*self._enqueue_call(lists, chunk), client=pipe)
            replies = await pipe.execute()
        self._known_queues.add(queue)
        return [bool(c) for reply in replies if isinstance(reply, list) for c in reply]

    def _enqueue_call(
        self, lists: _QueueKeyLists, jobs: Sequence[NewJob]
    ) -> tuple[list[str], list[Any]]:
        """KEYS (with only the streams of the bands used) and ARGV of one enqueue call."""
        keys = list(lists.enqueue)
        slots: dict[int, int] = {}
        argv: list[Any] = [GROUP, self.events_maxlen]
        for job in jobs:
            slot = slots.get(job.band)
            if slot is None:
                keys.append(lists.streams[job.band])
                slot = slots[job.band] = len(slots) + 1
            argv += (job.id, job.record, job.band, slot, job.delay_ms)
        return keys, argv

    # -- the worker's hot path ---------------------------------------------------------------

    async def ensure_groups(self, queue: str) -> None:
        """Create the streams and consumer group of every band of a queue (idempotent)."""
        k = self.keys.queue(queue)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.sadd(self.keys.queues, queue)
            for stream in k.streams:
                pipe.xgroup_create(stream, GROUP, id="0", mkstream=True)
            replies = await pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
                raise reply
        self._known_queues.add(queue)

    async def claim(
        self, queue: str, consumer: str, count: int, lease_ms: int, hostname: str, pid: int
    ) -> Claim:
        """Claim up to ``count`` queued jobs, highest priority first, starting their attempts."""
        claimed, newest = await self._scripts.claim(
            self._k(queue).claim,
            (GROUP, consumer, count, lease_ms, hostname, pid, self.events_maxlen),
        )
        jobs = [
            ClaimedJob(claimed[i].decode(), claimed[i + 1], claimed[i + 2], claimed[i + 3])
            for i in range(0, len(claimed), 4)
        ]
        return Claim(jobs, newest)

    async def finish(
        self, queue: str, completions: Sequence[Completion], retention_ms: int
    ) -> list[bool]:
        """Record ended attempts; False where the lease was no longer held (nothing written)."""
        argv: list[Any] = [GROUP, retention_ms, self.events_maxlen]
        for completion in completions:
            argv += completion.argv()
        recorded = await self._scripts.finish(self._k(queue).finish, argv)
        return [bool(r) for r in recorded]

    async def renew(
        self, queue: str, leases: Iterable[Lease], lease_ms: int
    ) -> tuple[list[str], list[str]]:
        """Extend leases; returns the ids of jobs whose lease this worker no longer holds,
        and of those whose cancellation was requested."""
        argv: list[Any] = [lease_ms]
        for lease in leases:
            argv += (lease.job_id, lease.token)
        if len(argv) == 1:
            return [], []
        lost, cancel = await self._scripts.renew(self._k(queue).renew, argv)
        return [i.decode() for i in lost], [i.decode() for i in cancel]

    # -- operations on jobs that have not finished -------------------------------------------

    async def cancel(self, queue: str, job_id: str, reason: str) -> str:
        """Cancel a job: 'cancelled', 'requested' (it runs), 'finished:<state>' or 'missing'."""
        answer = await self._scripts.cancel(
            self._k(queue).cancel, (job_id, reason, self.events_maxlen)
        )
        return str(answer.decode())

    async def reschedule(self, queue: str, job_id: str, delay_ms: int) -> str:
        """Move a job that has not started; returns its state after (or why not)."""
        answer = await self._scripts.reschedule(
            self._k(queue).reschedule, (job_id, delay_ms, GROUP, self.events_maxlen)
        )
        return str(answer.decode())

    async def update(self, queue: str, job_id: str, record: bytes, band: int) -> str:
        """Replace a waiting job's record and/or band (-1: keep); returns its state."""
        answer = await self._scripts.update(
            self._k(queue).update, (job_id, record, band, GROUP, self.events_maxlen)
        )
        return str(answer.decode())

    async def retry(self, queue: str, job_id: str) -> str:
        """Queue a failed or cancelled job again; returns 'queued' or its state."""
        answer = await self._scripts.retry(
            self._k(queue).retry, (job_id, GROUP, self.events_maxlen)
        )
        return str(answer.decode())

    async def record(self, queue: str, job_id: str) -> bytes | None:
        """A job's record (name, arguments, priority, creation time) as written."""
        raw: Any = await self.redis.hget(self.keys.queue(queue).jobs, job_id)  # type: ignore[misc]
        return None if raw is None else bytes(raw)

    async def read_control(
        self, positions: dict[str, bytes], block_ms: int
    ) -> list[tuple[str, str, str]]:
        """Cancellation requests after ``positions`` (updated in place): (queue, id, token)."""
        by_stream = {self.keys.queue(q).control: q for q in positions}
        streams: dict[Any, Any] = {self.keys.queue(q).control: p for q, p in positions.items()}
        reply: Any = await self.redis.xread(streams, block=block_ms)
        requests = []
        for stream, entries in reply or []:
            queue = by_stream[stream.decode() if isinstance(stream, bytes) else stream]
            for entry_id, fields in entries:
                positions[queue] = entry_id
                requests.append((queue, fields[b"id"].decode(), fields[b"t"].decode()))
        return requests

    async def newest_control_ids(self, queues: Iterable[str]) -> dict[str, bytes]:
        async with self.redis.pipeline(transaction=False) as pipe:
            names = list(queues)
            for queue in names:
                pipe.xrevrange(self.keys.queue(queue).control, count=1)
            replies = await pipe.execute()
        return {q: (r[0][0] if r else b"0-0") for q, r in zip(names, replies, strict=True)}

    async def requeue(self, queue: str, leases: Sequence[Lease], reason: str) -> list[bool]:
        """Hand running jobs back to the queue at once, closing their attempts as lost."""
        argv: list[Any] = [GROUP, reason, self.events_maxlen]
        for lease in leases:
            argv += (lease.job_id, lease.token)
        done = await self._scripts.requeue(self._k(queue).requeue, argv)
        return [bool(d) for d in done]

    async def reclaim(self, queue: str, max_lost: int, limit: int = 1000) -> Reclaim:
        """Take back jobs whose lease expired: requeue them, or fail them once their
        attempts were lost ``max_lost`` times."""
        requeued, failed, next_expiry = await self._scripts.reclaim(
            self._k(queue).reclaim, (GROUP, max_lost, limit, self.events_maxlen)
        )
        return Reclaim(
            [i.decode() for i in requeued], [i.decode() for i in failed], int(next_expiry)
        )

    async def prune(self, queue: str, retention_ms: int, limit: int = 1000) -> int:
        """Forget finished jobs past the retention; returns how many were forgotten."""
        return int(await self._scripts.prune(self._k(queue).prune, (retention_ms, limit)))

    async def forget_idle_consumers(self, queue: str, idle_ms: int) -> int:
        """Remove consumers (workers that died) holding no entries and idle for ``idle_ms``."""
        forgotten = 0
        for stream in self.keys.queue(queue).streams:
            try:
                consumers: Any = await self.redis.xinfo_consumers(stream, GROUP)
            except ResponseError:  # no such stream or group yet
                continue
            for consumer in consumers:
                if consumer["pending"] == 0 and consumer["idle"] >= idle_ms:
                    await self.redis.xgroup_delconsumer(stream, GROUP, consumer["name"])
                    forgotten += 1
        return forgotten

    async def forget_consumer(self, queue: str, consumer: str) -> None:
        """Remove a worker from the queue's consumer groups (it holds no entries by then)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in self.keys.queue(queue).streams:
                pipe.xgroup_delconsumer(stream, GROUP, consumer)
            await pipe.execute(raise_on_error=False)

    async def promote(self, queue: str, limit: int = 1000) -> Promotion:
        """Move due scheduled jobs to their stream; says when the next one is due."""
        promoted, next_due, timers_id = await self._scripts.promote(
            self._k(queue).promote, (limit, GROUP, self.events_maxlen)
        )
        return Promotion(int(promoted), int(next_due), timers_id)

    async def record_output(self, queue: str, outputs: Sequence[Output]) -> None:
        """Append log lines and set progress of running attempts."""
        argv: list[Any] = [self.log_bytes]
        for out in outputs:
            argv += (attempt_field(out.job_id, out.attempt), out.lines, out.progress)
        await self._scripts.record_output(self._k(queue).record_output, argv)

    async def wait_for_entries(
        self, newest: Mapping[str, Sequence[bytes]], timeout_ms: int
    ) -> bool:
        """Block until an entry newer than ``newest`` (per queue, per band) is added."""
        streams: dict[Any, Any] = {}
        for queue, ids in newest.items():
            for band, stream in enumerate(self.keys.queue(queue).streams):
                streams[stream] = ids[band] if band < len(ids) else b"0-0"
        reply = await self.redis.xread(streams, count=1, block=max(1, timeout_ms))
        return bool(reply)

    async def wait_for_timers(self, newest: dict[str, bytes], timeout_ms: int) -> bool:
        """Block until a job becomes due earlier than expected on one of the queues."""
        streams: dict[Any, Any] = {
            self.keys.queue(queue).timers: last for queue, last in newest.items()
        }
        reply = await self.redis.xread(streams, count=1, block=max(1, timeout_ms))
        return bool(reply)

    # -- events ------------------------------------------------------------------------------

    async def read_events(
        self, positions: dict[str, bytes], block_ms: int | None, count: int = 1000
    ) -> list[Event]:
        """Events after ``positions`` (updated in place), waiting up to ``block_ms``."""
        by_stream = {self.keys.queue(q).events: q for q in positions}
        streams: dict[Any, Any] = {self.keys.queue(q).events: pos for q, pos in positions.items()}
        reply: Any = await self.redis.xread(streams, count=count, block=block_ms)
        events: list[Event] = []
        for stream, entries in reply or []:
            queue = by_stream[stream.decode() if isinstance(stream, bytes) else stream]
            for entry_id, fields in entries:
                positions[queue] = entry_id
                for job_id, state in load_json(fields[b"d"]):
                    events.append(Event(queue, job_id, JobState(state)))
        return events

    # -- schedules ----------------------------------------------------------------------------

    async def server_time_ms(self) -> int:
        seconds, micros = await self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def save_schedule(
        self,
        queue: str,
        name: str,
        *,
        create: bool,
        definition: bytes = b"",
        revision: int = -1,
        paused: bool = False,
        due_ms: int = -1,
    ) -> tuple[int, int]:
        """Create (``create``) or change a schedule; returns (outcome, revision), outcome
        1 saved, 0 it existed (create), -1 it is missing, -2 its revision was not
        ``revision``. An empty definition keeps the stored one, ``due_ms`` -1 the stored
        next due time."""
        argv = (name, "create" if create else "update", definition, revision, int(paused), due_ms)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.sadd(self.keys.schedule_queues, queue)
            pipe.sadd(self.keys.queues, queue)
            await self._scripts.save_schedule(self._k(queue).save_schedule, argv, client=pipe)
            *_, (outcome, rev) = await pipe.execute()
        return int(outcome), int(rev)

    async def schedule_queues(self) -> list[str]:
        names: Any = await self.redis.smembers(self.keys.schedule_queues)  # type: ignore[misc]
        return sorted(n.decode() for n in names)

    async def locate_schedule(self, name: str) -> list[str]:
        """The queues holding a schedule with this name (names are meant to be unique)."""
        queues = await self.schedule_queues()
        if not queues:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.hexists(self.keys.queue(queue).schedule_state, name)
            found = await pipe.execute()
        return [q for q, f in zip(queues, found, strict=True) if f]

    async def schedules(
        self, queue: str, names: Sequence[str] | None = None
    ) -> list[ScheduleRecord]:
        """A queue's schedules (all, or those named), by name."""
        k = self.keys.queue(queue)
        async with self.redis.pipeline(transaction=False) as pipe:
            if names is None:
                pipe.hgetall(k.schedules)
                pipe.hgetall(k.schedule_state)
                definitions, states = await pipe.execute()
            else:
                if not names:
                    return []
                pipe.hmget(k.schedules, list(names))
                pipe.hmget(k.schedule_state, list(names))
                defs, sts = await pipe.execute()
                definitions = {n.encode(): d for n, d in zip(names, defs, strict=True)}
                states = {n.encode(): s for n, s in zip(names, sts, strict=True)}
        return [
            ScheduleRecord(queue, name.decode(), definition, states[name])
            for name, definition in sorted(definitions.items())
            if definition is not None and states.get(name) is not None
        ]

    async def due_schedules(self, queue: str, until_ms: int, limit: int) -> list[ScheduleRecord]:
        """Schedules of a queue due at ``until_ms`` (server clock), soonest first."""
        names: Any = await self.redis.zrangebyscore(
            self.keys.queue(queue).schedule_due, "-inf", until_ms, start=0, num=limit
        )
        return await self.schedules(queue, [n.decode() for n in names])

    async def delete_schedule(self, queue: str, name: str) -> bool:
        k = self.keys.queue(queue)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(k.schedule_state, name)
            pipe.hdel(k.schedules, name)
            pipe.zrem(k.schedule_due, name)
            deleted, *_ = await pipe.execute()
        return bool(deleted)

    async def fire_schedules(
        self, queue: str, firings: Sequence[ScheduleFiring]
    ) -> tuple[list[tuple[int, int]], int]:
        """Create tick jobs and advance schedules (compare-and-set, see fire_schedules.lua).

        Returns (outcome, jobs created) per firing and ms until the next due schedule.
        """
        argv: list[Any] = [GROUP, self.events_maxlen]
        for f in firings:
            argv += (f.name, f.revision, f.due_ms, f.next_due_ms, f.band, len(f.jobs))
            for job in f.jobs:
                argv += (job.id, job.record, job.tick_ms)
        reply = await self._scripts.fire_schedules(self._k(queue).fire_schedules, argv)
        results = [(int(reply[i]), int(reply[i + 1])) for i in range(1, len(reply), 2)]
        return results, int(reply[0])

    async def scheduler_lease(
        self, queue: str, holder: str, lease_ms: int, *, release: bool = False
    ) -> SchedulerLease:
        """Take or renew (or release) a queue's scheduler lease; says what is due."""
        reply = await self._scripts.scheduler_lease(
            self._k(queue).scheduler_lease, (holder, lease_ms, "release" if release else "hold")
        )
        leader, left, gap_from, gap_to, next_due, wake_id, now = reply
        return SchedulerLease(
            bool(leader), int(left), int(gap_from), int(gap_to), int(next_due), wake_id, int(now)
        )

    async def scheduler_leader(self, queue: str) -> str | None:
        """The id of the worker whose scheduler leads a queue, if any."""
        holder: Any = await self.redis.get(self.keys.queue(queue).scheduler_lease)
        return holder.decode() if holder is not None else None

    async def wait_for_schedule_changes(self, newest: Mapping[str, bytes], timeout_ms: int) -> bool:
        """Block until a schedule of one of the queues is saved after ``newest``."""
        streams: dict[Any, Any] = {
            self.keys.queue(queue).schedule_wake: last for queue, last in newest.items()
        }
        reply = await self.redis.xread(streams, count=1, block=max(1, timeout_ms))
        return bool(reply)

    async def job_states(self, queue: str, job_ids: Sequence[str]) -> list[JobState | None]:
        """The states of jobs of one queue (None for those that do not exist)."""
        if not job_ids:
            return []
        raws: Any = await self.redis.hmget(self.keys.queue(queue).status, list(job_ids))  # type: ignore[misc]
        return [status_state(raw) if raw else None for raw in raws]

    # -- workers -------------------------------------------------------------------------------

    async def heartbeat(self, info: WorkerInfo, ttl_ms: int) -> None:
        """Publish a worker's state; it disappears ``ttl_ms`` after the last heartbeat."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.keys.worker(info.id), pack(info.model_dump()), px=ttl_ms)
            pipe.zadd(self.keys.workers, {info.id: int(info.last_seen * 1000)})
            await pipe.execute()

    async def remove_worker(self, worker_id: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(self.keys.worker(worker_id))
            pipe.zrem(self.keys.workers, worker_id)
            await pipe.execute()

    async def workers(self) -> list[WorkerInfo]:
        """Live workers (those whose heartbeat has not expired); forgets dead ones."""
        ids: Any = await self.redis.zrange(self.keys.workers, 0, -1)
        if not ids:
            return []
        raws: Any = await self.redis.mget([self.keys.worker(i.decode()) for i in ids])
        dead = [i for i, raw in zip(ids, raws, strict=True) if raw is None]
        if dead:
            await self.redis.zrem(self.keys.workers, *dead)
        return [WorkerInfo.model_validate(unpack(raw)) for raw in raws if raw is not None]

    # -- inspection --------------------------------------------------------------------------

    async def queues(self) -> list[str]:
        names: Any = await self.redis.smembers(self.keys.queues)  # type: ignore[misc]
        return sorted(n.decode() for n in names)

    async def locate(self, job_id: str) -> list[str]:
        """The queues holding a job with this id (ids are unique within a queue)."""
        names = await self.queues()
        if not names:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for queue in names:
                pipe.hexists(self.keys.queue(queue).status, job_id)
            found = await pipe.execute()
        return [q for q, f in zip(names, found, strict=True) if f]

    async def position_and_state(self, queue: str, job_id: str) -> tuple[bytes, JobState | None]:
        """The newest event id of a queue and a job's state, read atomically (MULTI)."""
        k = self.keys.queue(queue)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xrevrange(k.events, count=1)
            pipe.hget(k.status, job_id)
            newest, raw = await pipe.execute()
        return (newest[0][0] if newest else b"0-0"), (status_state(raw) if raw else None)

    async def state(self, queue: str, job_id: str) -> JobState | None:
        raw: Any = await self.redis.hget(self.keys.queue(queue).status, job_id)  # type: ignore[misc]
        return status_state(raw) if raw else None

    async def job(self, queue: str, job_id: str, *, with_logs: bool = True) -> Job | None:
        """A job with every attempt (and their log lines), or None when it does not exist."""
        k = self.keys.queue(queue)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(k.jobs, job_id)
            pipe.hget(k.status, job_id)
            record_raw, status_raw = await pipe.execute()
        if record_raw is None or status_raw is None:
            return None
        result_raw = await self.result(queue, job_id)
        attempts = await self._attempts(k, job_id, attempt_count(status_raw), with_logs)
        return decode_job(job_id, queue, record_raw, status_raw, result_raw, attempts)

    async def _attempts(
        self, k: QueueKeys, job_id: str, count: int, with_logs: bool
    ) -> list[Attempt]:
        if count == 0:
            return []
        fields = [attempt_field(job_id, n) for n in range(1, count + 1)]
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(k.attempts, fields)
            pipe.hmget(k.logs, fields) if with_logs else pipe.echo(b"")
            pipe.hmget(k.progress, fields)
            raw_attempts, raw_logs, raw_progress = await pipe.execute()
        if not with_logs:
            raw_logs = [None] * count
        return [
            decode_attempt(a, logs, progress)
            for a, logs, progress in zip(raw_attempts, raw_logs, raw_progress, strict=True)
            if a is not None
        ]

    async def result(self, queue: str, job_id: str) -> bytes | None:
        """A job's stored result; None once its ttl has passed (even before it is pruned)."""
        k = self.keys.queue(queue)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(k.results, job_id)
            pipe.zscore(k.result_expiry, job_id)
            pipe.time()
            raw, expires_ms, (seconds, micros) = await pipe.execute()
        if raw is None or (
            expires_ms is not None and expires_ms <= seconds * 1000 + micros // 1000
        ):
            return None
        return bytes(raw)

    async def count(self, queue: str, state: JobState) -> int:
        return int(await self.redis.zcard(self.keys.queue(queue).index(state.value)))

    async def counts(self, queue: str) -> dict[JobState, int]:
        """Jobs per state in a queue: one ZCARD per state, in one round trip."""
        states = list(JobState)
        k = self.keys.queue(queue)
        async with self.redis.pipeline(transaction=False) as pipe:
            for state in states:
                pipe.zcard(k.index(state.value))
            replies = await pipe.execute()
        return {s: int(n) for s, n in zip(states, replies, strict=True)}

    async def list_jobs(
        self, queue: str, state: JobState, *, offset: int = 0, limit: int = 50
    ) -> list[JobSummary]:
        """One page of a queue's jobs in a state: newest first (scheduled: soonest due first)."""
        k = self.keys.queue(queue)
        index = k.index(state.value)
        stop = offset + limit - 1
        ids: Any
        if state in _ASCENDING_STATES:
            ids = await self.redis.zrange(index, offset, stop)
        else:
            ids = await self.redis.zrevrange(index, offset, stop)
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(k.jobs, ids)
            pipe.hmget(k.status, ids)
            records, statuses = await pipe.execute()
        return [
            decode_summary(job_id.decode(), queue, record, status)
            for job_id, record, status in zip(ids, records, statuses, strict=True)
            if record is not None and status is not None
        ]
