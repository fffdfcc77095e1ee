"""Every Redis key jobmaster uses, built from the namespace.

Nobody outside this module and :mod:`jobmaster.store` builds a key string.

Records written by Python (job records, arguments, results, log lines, progress) are
msgpack. Records that the Lua scripts edit (status, attempts, schedule state) have one
encoding, written and read whole by the record codec (``common.lua`` in Lua,
:mod:`jobmaster.record_codec` in Python): a stream of msgpack values, one per field in the
order listed below, nil for an absent field; the fields after ``|`` are left out together
when they are all absent. JSON records of these kinds were written by earlier versions:
they are read, never written. Events are JSON, written once. A job record that starts with
``{`` is JSON: it was written by the claim script for an invalid stream entry.

All keys of one queue share the hash tag ``{<queue>}`` so that every script touches
one slot and the same code runs on Redis Cluster. Job, attempt, log and result records
are fields of per-queue hashes (not keys of their own), so scripts receive every key
they touch in ``KEYS`` and never build key names themselves::

    <ns>:queues                      set     names of every queue that ever had a job
    <ns>:workers                     zset    worker id -> last heartbeat (ms)
    <ns>:worker:<id>                 string  msgpack WorkerInfo, expires with the heartbeat
    <ns>:worker:<id>:commands        stream  capped; remote commands to one worker, field c =
                                             pause|resume|drain|stop, field a = the key of
                                             its acknowledgement; expires a day after the
                                             last command, deleted when the worker stops
    <ns>:worker_ack:<command id>     list    the worker's acknowledgement of one command
                                             (its state after it), expires after a minute
    <ns>:schedule_queues             set     names of the queues that hold schedules
    <ns>:dashboard:session:<hash>    string  a dashboard login session (owned by the
                                             dashboard; <hash>: SHA-256 of its id); expires
                                             when unused for the session's idle time

    <ns>:{<q>}:stream:<band>         stream  one entry {id: job id} per runnable job, one
                                             stream per priority band 0..9, consumer
                                             group "workers", read with NOACK; the claim
                                             trims what it read (XTRIM MINID)
    <ns>:{<q>}:jobs                  hash    job id -> msgpack {n: name, a: args (bin),
                                             p: priority, c: created ms, t: tags (when
                                             any), h: headers of middleware, e.g. a trace
                                             context (when any)} (set at enqueue)
    <ns>:{<q>}:status                hash    job id -> status record: s: state, a: attempts,
                                             b: band, e: stream entry (while queued), t:
                                             lease token (while active), f: finished ms |
                                             d: due ms, x: error type, m: error message, l:
                                             losses counted towards max_lost, u: attempts
                                             that were not tries (lost or handed back, or
                                             rate_limited), k: 1
                                             while a suspect (lost, runs on a worker with no
                                             other suspect), c: 1 once its cancellation was
                                             requested while it ran, raw: an unreadable
                                             status kept as text when the job was failed
                                             with CorruptStatus (edited by Lua)
    <ns>:{<q>}:attempts              hash    "<job id>:<n>" -> attempt opening record,
                                             written when it starts: n, w: worker, h: host,
                                             p: pid, s: started ms; "<job id>:<n>:end" ->
                                             attempt end record, written when it ends
                                             (without reading the opening): f: finished ms,
                                             o: outcome | x, m, tb: error type, message,
                                             traceback
    <ns>:{<q>}:logs                  hash    "<job id>:<n>" -> concatenated msgpack lines
    <ns>:{<q>}:log_followers         zset    job id -> ms (follower's clock) until which
                                             `jobmaster logs -f` follows it; renewed while
                                             it follows, the key expires with the last one
    <ns>:{<q>}:log_feed              stream  capped (~1000); what record_output.lua appends
                                             to the attempts of followed jobs: f = attempt
                                             field, o = byte offset, l = the lines
    <ns>:{<q>}:progress              hash    "<job id>:<n>" -> msgpack progress value
    <ns>:{<q>}:results               hash    job id -> msgpack result
    <ns>:{<q>}:result_expiry         zset    job id -> ms when its result is dropped

    <ns>:{<q>}:queued                zset    job id -> enqueue ms      (state queued)
    <ns>:{<q>}:scheduled             zset    job id -> due ms          (state scheduled)
    <ns>:{<q>}:active                zset    job id -> lease expiry ms (state active)
    <ns>:{<q>}:succeeded             zset    job id -> finished ms     (state succeeded)
    <ns>:{<q>}:failed                zset    job id -> finished ms     (state failed)
    <ns>:{<q>}:cancelled             zset    job id -> finished ms     (state cancelled)

    <ns>:{<q>}:claim:<worker id>     string  the worker's last claim: its claim id and the
                                             ids of the jobs it started (SET PX one lease),
                                             so that a claim sent again gets the same jobs

    <ns>:{<q>}:events                stream  capped; one entry per script call, field d =
                                             JSON [[job id, state], ...]
    <ns>:{<q>}:timers                stream  capped; a wake-up entry whenever a job becomes
                                             due earlier than every other scheduled job
    <ns>:{<q>}:control               stream  capped; {id, t: lease token} when a running
                                             job's cancellation is requested

    Schedules live in the hash tag of their job's queue, so that one script reads a
    schedule and creates its tick's job (id ``<schedule>@<tick ms>``; "run now" jobs are
    ``<schedule>@run-<hex>``) atomically:

    <ns>:{<q>}:schedules             hash    schedule name -> msgpack definition {name, job,
                                             queue, cron, every, tz, args, catch_up,
                                             catch_up_limit, priority, source} (Python)
    <ns>:{<q>}:schedule_state        hash    schedule name -> schedule state record: r:
                                             revision, d: next due ms (absent while paused),
                                             p: 1 while paused, l: last tick ms, j: last job
                                             id (edited by Lua)
    <ns>:{<q>}:schedule_due          zset    schedule name -> next due ms (not paused ones)
    <ns>:{<q>}:schedule_wake         stream  capped; an entry whenever a schedule is saved,
                                             to wake the scheduler that leads the queue
    <ns>:{<q>}:scheduler_lease       string  id of the worker whose scheduler leads the
                                             queue (SET PX: a lease, renewed by its holder)
    <ns>:{<q>}:scheduler             hash    seen: ms a leader last held the lease; gap_from,
                                             gap_to: the last stretch when none ran (ms)

    Webhook deliveries of the queue's jobs (jobmaster.ops.deliveries): the outbox, written
    by finish.lua in the call that records the job's end (webhook_outbox.lua):

    <ns>:{<q>}:webhook_due           zset    delivery id -> ms when it is next tried (a claim
                                             moves it one lease ahead)
    <ns>:{<q>}:webhook_deliveries    hash    delivery id -> JSON {webhook: key, url, tries,
                                             body: the request's JSON}
    Flow control (jobmaster.limits): paused queues, unique jobs, concurrency and rate limits.
    <L> is a limit key: the job's name, or ``<name>:<value of its limit_key template>``:

    <ns>:{<q>}:paused                string  present while the queue is paused
    <ns>:{<q>}:unique                hash    unique key -> id of the job that holds it
    <ns>:{<q>}:limits                hash    job id -> its controls, tab-separated: unique
                                             key, unique_for ms, limit key, max_running,
                                             rate count, rate window ms (empty: none); only
                                             jobs with controls have one
    <ns>:{<q>}:limit_keys            hash    limit key -> "max_running<TAB>count/window ms"
    <ns>:{<q>}:limit_due             zset    limit key -> ms when its rate has room again
                                             (while jobs wait on it)
    <ns>:{<q>}:limit:active:<L>      set     ids of the jobs of <L> running now
    <ns>:{<q>}:limit:starts:<L>      hash    bucket (a twentieth of the rate's window, by
                                             number since the epoch) -> starts in it
    <ns>:{<q>}:limit:wait:<L>        list    ids of the queued jobs held back by <L>'s limits
                                             (their status is left as it was: queued)
    <ns>:{<q>}:resource_wait         list    ids of the queued jobs that needed more
                                             resources than the worker that read them had
    <ns>:{<q>}:limit_ready           set     limit keys that may have room for a held job
                                             (a unit was freed, or the rate has room)
    <ns>:{<q>}:wake                  stream  capped; an entry when a limit key becomes ready
                                             or a job is held back for resources, so that
                                             idle workers claim again

    Relations between jobs (jobmaster.relations, relations.lua): dependencies, groups and
    the relay that carries news of a job's end to other queues (msgpack records):

    <ns>:{<q>}:blocked               zset    job id -> ms it was blocked (state blocked)
    <ns>:{<q>}:waits                 hash    job id -> its dependencies [[queue, id, mode
                                             (all|any), last state seen, seq, kind (j|g)]]
    <ns>:{<q>}:related               hash    job id -> {d: [[queue, id, mode]] the jobs that
                                             wait on it, g: [group, group's queue, index]}
    <ns>:{<q>}:relay                 hash    message id -> message for another queue {t:
                                             target queue, k: kind, ...}; '#': seq counter
    <ns>:{<q>}:relay_due             zset    message id -> ms when it is (next) delivered
    <ns>:{<q>}:groups                hash    group id -> {w: all|any|quorum, f: on failure,
                                             t: [queue, id] of its callback, z: size, c:
                                             created ms}; "<group>:m" -> [[queue, id]] members
    <ns>:{<q>}:group_state           hash    group id -> {s: state, ok, failed, cancelled, f:
                                             ended ms, x: 1 once its members were stopped}
    <ns>:{<q>}:group_members         hash    "<group>:<index>" -> "<state>:<seq>" of a member
                                             that ended
    <ns>:{<q>}:group_index           zset    group id -> created ms
    <ns>:{<q>}:group_ended           zset    group id -> ms it ended (forgotten after the
                                             retention)

    <ns>:{<q>}:notifications:<id>    list    JSON per try of a delivery of job <id>: {delivery,
                                             url, number, at, status, error, ok} (expires
                                             with the retention)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

PRIORITY_BANDS = 10
"""Priorities are integers 0..9; each is a band (a stream) read highest first."""

TERMINAL_STATES = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class QueueKeys:
    """The keys of one queue; all share the hash tag of the queue."""

    namespace: str
    queue: str

    @cached_property
    def _base(self) -> str:
        return f"{self.namespace}:{{{self.queue}}}"

    def stream(self, band: int) -> str:
        return f"{self._base}:stream:{band}"

    @cached_property
    def streams(self) -> tuple[str, ...]:
        """Streams of every band, lowest band first (index = band)."""
        return tuple(self.stream(band) for band in range(PRIORITY_BANDS))

    @cached_property
    def jobs(self) -> str:
        return f"{self._base}:jobs"

    @cached_property
    def status(self) -> str:
        return f"{self._base}:status"

    @cached_property
    def attempts(self) -> str:
        return f"{self._base}:attempts"

    @cached_property
    def logs(self) -> str:
        return f"{self._base}:logs"

    @cached_property
    def log_followers(self) -> str:
        return f"{self._base}:log_followers"

    @cached_property
    def log_feed(self) -> str:
        return f"{self._base}:log_feed"

    @cached_property
    def progress(self) -> str:
        return f"{self._base}:progress"

    @cached_property
    def results(self) -> str:
        return f"{self._base}:results"

    @cached_property
    def result_expiry(self) -> str:
        return f"{self._base}:result_expiry"

    def index(self, state: str) -> str:
        """The sorted set that lists the queue's jobs in ``state``."""
        return f"{self._base}:{state}"

    def claim_memo(self, consumer: str) -> str:
        """The last claim of one worker on this queue (see claim.lua)."""
        return f"{self._base}:claim:{consumer}"

    @cached_property
    def events(self) -> str:
        return f"{self._base}:events"

    @cached_property
    def timers(self) -> str:
        return f"{self._base}:timers"

    @cached_property
    def control(self) -> str:
        return f"{self._base}:control"

    @cached_property
    def schedules(self) -> str:
        return f"{self._base}:schedules"

    @cached_property
    def schedule_state(self) -> str:
        return f"{self._base}:schedule_state"

    @cached_property
    def schedule_due(self) -> str:
        return f"{self._base}:schedule_due"

    @cached_property
    def schedule_wake(self) -> str:
        return f"{self._base}:schedule_wake"

    @cached_property
    def scheduler_lease(self) -> str:
        return f"{self._base}:scheduler_lease"

    @cached_property
    def scheduler(self) -> str:
        return f"{self._base}:scheduler"

    @cached_property
    def webhook_due(self) -> str:
        return f"{self._base}:webhook_due"

    @cached_property
    def webhook_deliveries(self) -> str:
        return f"{self._base}:webhook_deliveries"

    def notifications(self, job_id: str) -> str:
        return f"{self._base}:notifications:{job_id}"

    @cached_property
    def paused(self) -> str:
        return f"{self._base}:paused"

    @cached_property
    def limits(self) -> str:
        return f"{self._base}:limits"

    @cached_property
    def unique(self) -> str:
        return f"{self._base}:unique"

    @cached_property
    def limit_keys(self) -> str:
        return f"{self._base}:limit_keys"

    @cached_property
    def limit_due(self) -> str:
        return f"{self._base}:limit_due"

    @cached_property
    def resource_wait(self) -> str:
        return f"{self._base}:resource_wait"

    @cached_property
    def wake(self) -> str:
        return f"{self._base}:wake"

    @cached_property
    def limit_ready(self) -> str:
        return f"{self._base}:limit_ready"

    @cached_property
    def limit_prefix(self) -> str:
        """What the keys of one limit key value start with (the scripts add ``active:<L>``,
        ``starts:<L>`` and ``wait:<L>``)."""
        return f"{self._base}:limit:"

    @cached_property
    def waits(self) -> str:
        return f"{self._base}:waits"

    @cached_property
    def related(self) -> str:
        return f"{self._base}:related"

    @cached_property
    def relay(self) -> str:
        return f"{self._base}:relay"

    @cached_property
    def relay_due(self) -> str:
        return f"{self._base}:relay_due"

    @cached_property
    def groups(self) -> str:
        return f"{self._base}:groups"

    @cached_property
    def group_state(self) -> str:
        return f"{self._base}:group_state"

    @cached_property
    def group_members(self) -> str:
        return f"{self._base}:group_members"

    @cached_property
    def group_index(self) -> str:
        return f"{self._base}:group_index"

    @cached_property
    def group_ended(self) -> str:
        return f"{self._base}:group_ended"

    def limit_active(self, limit_key: str) -> str:
        return f"{self.limit_prefix}active:{limit_key}"

    def limit_wait(self, limit_key: str) -> str:
        return f"{self.limit_prefix}wait:{limit_key}"


@dataclass(frozen=True)
class Keys:
    """The key layout of one namespace."""

    namespace: str = "jobmaster"

    def queue(self, name: str) -> QueueKeys:
        return QueueKeys(self.namespace, name)

    @cached_property
    def queues(self) -> str:
        return f"{self.namespace}:queues"

    @cached_property
    def workers(self) -> str:
        return f"{self.namespace}:workers"

    def worker(self, worker_id: str) -> str:
        return f"{self.namespace}:worker:{worker_id}"

    def worker_commands(self, worker_id: str) -> str:
        """The stream of remote commands to one worker (pause, resume, drain, stop)."""
        return f"{self.namespace}:worker:{worker_id}:commands"

    def worker_ack(self, command_id: str) -> str:
        """Where a worker acknowledges one remote command."""
        return f"{self.namespace}:worker_ack:{command_id}"

    @cached_property
    def schedule_queues(self) -> str:
        return f"{self.namespace}:schedule_queues"

    def dashboard_session(self, session_hash: str) -> str:
        """A dashboard login session, by the SHA-256 (hex) of its id."""
        return f"{self.namespace}:dashboard:session:{session_hash}"


def attempt_field(job_id: str, number: int) -> str:
    """The field of an attempt in the per-queue attempts (its opening record), logs and
    progress hashes."""
    return f"{job_id}:{number}"


def attempt_end_field(job_id: str, number: int) -> str:
    """The field of an attempt's end record in the per-queue attempts hash."""
    return f"{job_id}:{number}:end"
