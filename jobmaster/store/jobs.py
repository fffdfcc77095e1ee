"""Jobs through their life: enqueue, claim, finish, leases, operations, events."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any

from redis.exceptions import ConnectionError, NoScriptError, OutOfMemoryError, ResponseError

from jobmaster.codec import load_json
from jobmaster.errors import is_out_of_memory
from jobmaster.keys import attempt_field
from jobmaster.models import JobState
from jobmaster.multiplexed import MultiplexedConnection, encode_command, encode_evalsha
from jobmaster.store.base import ENQUEUE_CHUNK, GROUP, StoreBase, _QueueKeyLists
from jobmaster.store.leases import renew_arguments, renewed
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
)


class JobCommands(StoreBase):
    """The hot path and every state change of a job, each one script call."""

    # -- producing ---------------------------------------------------------------------------

    async def enqueue(self, queue: str, jobs: Sequence[NewJob]) -> list[bool]:
        """Create jobs; for each, False when its id already existed (nothing written)."""
        chunks = (jobs[i : i + ENQUEUE_CHUNK] for i in range(0, len(jobs), ENQUEUE_CHUNK))
        return await self.enqueue_batches(queue, chunks)

    async def enqueue_batches(self, queue: str, batches: Iterable[Sequence[NewJob]]) -> list[bool]:
        """:meth:`enqueue` of batches of at most ``ENQUEUE_CHUNK`` jobs. Over the multiplexed
        connection each batch is sent as soon as it is built (the iterable may build them
        lazily), so that Redis runs one while the next is being built."""
        lists = self._k(queue)
        if self.fast is None:
            return await self._enqueue_pipelined(queue, lists, [b for b in batches if b])
        fast, script = self.fast, self._scripts.enqueue
        await fast.connect()
        pending: list[tuple[Sequence[NewJob], asyncio.Future[Any]]] = []
        for batch in batches:
            if batch:
                if not pending and queue not in self._known_queues:
                    await fast.execute("SADD", self.keys.queues, queue)
                command = enqueue_command(self._heads, script.sha, lists, batch, self.events_maxlen)
                pending.append((batch, fast.submit(command)))
        replies = await asyncio.gather(*(p[1] for p in pending), return_exceptions=True)
        for number, ((batch, _), flags) in enumerate(zip(pending, replies, strict=True)):
            if isinstance(flags, NoScriptError | ConnectionError):  # repeatable: fixed ids
                try:
                    replies[number] = await script(*self._enqueue_call(lists, batch))
                except ResponseError as exc:
                    replies[number] = exc
        created = created_flags([len(p[0]) for p in pending], replies)
        self._known_queues.add(queue)
        return created

    async def _enqueue_pipelined(
        self, queue: str, lists: _QueueKeyLists, batches: list[Sequence[NewJob]]
    ) -> list[bool]:
        script = self._scripts.enqueue
        if len(batches) == 1 and queue in self._known_queues:
            created = await script(*self._enqueue_call(lists, batches[0]))
            return [bool(c) for c in created]
        async with self.redis.pipeline(transaction=False) as pipe:
            if queue not in self._known_queues:
                pipe.sadd(self.keys.queues, queue)
            sizes = [] if queue in self._known_queues else [0]  # SADD's reply first
            for batch in batches:
                await script(*self._enqueue_call(lists, batch), client=pipe)
                sizes.append(len(batch))
            replies = await pipe.execute(raise_on_error=False)
        created = created_flags(sizes, replies)
        self._known_queues.add(queue)
        return created

    def _enqueue_call(
        self, lists: _QueueKeyLists, jobs: Sequence[NewJob]
    ) -> tuple[list[str], list[Any]]:
        return enqueue_call(lists, jobs, self.events_maxlen)

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
        self,
        queue: str,
        consumer: str,
        count: int,
        lease_ms: int,
        hostname: str,
        pid: int,
        *,
        claim_id: str | None = None,
        again: bool = False,
        suspects: int | None = None,
    ) -> Claim:
        """Claim up to ``count`` queued jobs, highest priority first, starting their attempts.

        Args:
            claim_id: the caller's name for this claim (default: a new random one). Sent
                again with the same id (after its reply was lost), the claim answers with
                the jobs it started the first time, for up to ``lease_ms``. Give each new
                claim of a consumer a new id.
            again: this claim may have been sent before (an earlier call with this id
                failed): it first looks for the jobs that call started. (When the
                connection drops during the call, this method sends it again so itself.)
            suspects: how many suspect jobs (see claim.lua) the claim may take (default:
                any number); a worker takes one at a time.

        Raises:
            redis.exceptions.ResponseError: nothing was claimed and a band's stream could not
                be read (Redis's answer is in the message).
        """
        keys = self._k(queue).claim_of(consumer)
        argv = [
            GROUP, consumer, count, lease_ms, hostname, pid, self.events_maxlen,
            claim_id or os.urandom(8).hex(), count if suspects is None else suspects,
            1 if again or self.fast is None else 0,  # redis-py may send it again itself
        ]  # fmt: skip
        try:
            reply = await self._scripts.claim(keys, argv, resend=False)
        except ConnectionError:  # it may have run: sent again, it answers as it did
            argv[-1] = 1
            reply = await self._scripts.claim(keys, argv)
        claimed, newest, errors, deferred, suspect_ids = reply
        jobs = [
            ClaimedJob(claimed[i].decode(), claimed[i + 1], claimed[i + 2], claimed[i + 3])
            for i in range(0, len(claimed), 4)
        ]
        if suspect_ids:  # rare: jobs lost before
            named = {s.decode() for s in suspect_ids}
            jobs = [job._replace(suspect=job.id in named) for job in jobs]
        if errors:
            return Claim(jobs, newest, [e.decode(errors="replace") for e in errors], deferred)
        return Claim(jobs, newest, deferred=deferred)

    async def finish(
        self, queue: str, completions: Sequence[Completion], retention_ms: int
    ) -> list[int]:
        """Record ended attempts: a :class:`Recorded` value for each (compare them with its
        members: they come back as plain integers).

        Idempotent: the same completions sent again (a reply was lost) answer ``RECORDED``
        for those written the first time. When Redis refuses the call itself (an error
        about the call, not about the server's state: a script error, a value over
        ``proto-max-bulk-len``), each completion is sent alone, and one that Redis still
        refuses is written as a failure that says why (``UnrecordableEnd``): one bad
        completion does not hold back the others."""
        try:
            return await self._finish(queue, completions, retention_ms)
        except ResponseError as exc:
            if not _refused_call(exc):
                raise
        return [await self._finish_alone(queue, c, retention_ms) for c in completions]

    async def _finish_alone(self, queue: str, completion: Completion, retention_ms: int) -> int:
        try:
            return (await self._finish(queue, [completion], retention_ms))[0]
        except ResponseError as exc:
            if not _refused_call(exc):
                raise
            failure = completion._replace(
                outcome="failed",
                next_state="failed",
                delay_ms=0,
                result=b"",
                result_ttl_ms=-1,
                error_type="UnrecordableEnd",
                error_message=f"Redis refused to record how this attempt ended "
                f"({completion.outcome}): {exc}",
            )
        try:
            recorded = (await self._finish(queue, [failure], retention_ms))[0]
        except ResponseError as exc:
            if not _refused_call(exc):
                raise
            return Recorded.UNRECORDABLE
        return Recorded.REPLACED if recorded == Recorded.RECORDED else recorded

    async def _finish(
        self, queue: str, completions: Sequence[Completion], retention_ms: int
    ) -> list[int]:
        keys, argv = self._k(queue).finish, [retention_ms, self.events_maxlen]
        if self.fast is not None:
            parts = [encode_completion(completion) for completion in completions]
            encoded = (b"".join(p[0] for p in parts), sum(p[1] for p in parts))
            recorded = await self._scripts.finish.call_encoded(keys, argv, encoded)
        else:
            for completion in completions:
                argv += completion.argv()
            recorded = await self._scripts.finish(keys, argv)
        return list(recorded)

    async def renew(
        self, queue: str, leases: Sequence[Lease], lease_ms: int
    ) -> tuple[list[Lease], list[Lease]]:
        """Extend leases (even when Redis is full); returns the leases this worker no longer
        holds, and those whose job's cancellation was requested."""
        if not leases:
            return [], []
        reply = await self._scripts.renew(self._k(queue).renew, renew_arguments(leases, lease_ms))
        return renewed(leases, reply)

    async def record_overrun(self, queue: str, lease: Lease, error_type: str, message: str) -> bool:
        """Close a running attempt as timed out while its code still runs (the job keeps its
        lease until the code returns); False when the lease is no longer held."""
        recorded = await self._scripts.overrun(
            self._k(queue).overrun, (lease.job_id, lease.token, error_type, message)
        )
        return bool(recorded)

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
        """Queue a failed or cancelled job again: 'queued', 'refused:<state>' or 'missing'."""
        answer = await self._scripts.retry(
            self._k(queue).retry, (job_id, GROUP, self.events_maxlen)
        )
        return str(answer.decode())

    async def delete(self, queue: str, job_id: str) -> str:
        """Delete a finished job: 'deleted', 'refused:<state>' or 'missing'."""
        answer = await self._scripts.delete(self._k(queue).delete, (job_id,))
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
        reader = self._reader("control")
        reply: Any
        if reader is None:
            reply = await self.redis.xread(streams, block=block_ms)
        else:
            command = ["XREAD", "BLOCK", block_ms, "STREAMS", *streams, *streams.values()]
            reply = await reader.execute_blocking(block_ms / 1000, *command)
        requests = []
        for stream, entries in reply or []:
            queue = by_stream[stream.decode() if isinstance(stream, bytes) else stream]
            for entry_id, fields in entries:
                if isinstance(fields, list):  # a raw reply: [field, value, ...]
                    fields = dict(zip(fields[::2], fields[1::2], strict=True))
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
        """Block until an entry newer than ``newest`` (per queue, per band) is added (on
        the path from an enqueue to an idle worker starting its job)."""
        streams: dict[Any, Any] = {}
        for queue, ids in newest.items():
            for band, stream in enumerate(self.keys.queue(queue).streams):
                streams[stream] = ids[band] if band < len(ids) else b"0-0"
        block_ms = max(1, timeout_ms)
        reader = self._reader("entries")
        if reader is None:
            return bool(await self.redis.xread(streams, count=1, block=block_ms))
        command = ["XREAD", "COUNT", 1, "BLOCK", block_ms, "STREAMS", *streams, *streams.values()]
        return bool(await reader.execute_blocking(block_ms / 1000, *command))

    async def wait_for_timers(self, newest: dict[str, bytes], timeout_ms: int) -> bool:
        """Block until a job becomes due earlier than expected on one of the queues."""
        streams: dict[Any, Any] = {
            self.keys.queue(queue).timers: last for queue, last in newest.items()
        }
        block_ms = max(1, timeout_ms)
        reader = self._reader("timers")  # a cancelled wait ends at once there
        if reader is None:
            return bool(await self.redis.xread(streams, count=1, block=block_ms))
        command = ["XREAD", "COUNT", 1, "BLOCK", block_ms, "STREAMS", *streams, *streams.values()]
        return bool(await reader.execute_blocking(block_ms / 1000, *command))

    # -- events ------------------------------------------------------------------------------

    async def read_events(
        self, positions: dict[str, bytes], block_ms: int | None, count: int = 1000
    ) -> list[Event]:
        """Events after ``positions`` (updated in place), waiting up to ``block_ms``."""
        events, _ = await self.read_event_batch(positions, block_ms, count)
        return events

    async def read_event_batch(
        self,
        positions: dict[str, bytes],
        block_ms: int | None,
        count: int = 1000,
        reader: MultiplexedConnection | None = None,
    ) -> tuple[list[Event], int]:
        """Events after ``positions`` (updated in place, past the entries that cannot be
        decoded too), waiting up to ``block_ms`` (on ``reader`` if given, a connection of
        :meth:`new_reader`); and how many entries were skipped as undecodable."""
        by_stream = {self.keys.queue(q).events: q for q in positions}
        streams: dict[Any, Any] = {self.keys.queue(q).events: pos for q, pos in positions.items()}
        reply: Any
        if reader is None:
            reply = await self.redis.xread(streams, count=count, block=block_ms)
        else:
            block = [] if block_ms is None else ["BLOCK", block_ms]
            command = ["XREAD", "COUNT", count, *block, "STREAMS", *streams, *streams.values()]
            reply = await reader.execute_blocking((block_ms or 0) / 1000, *command)
        events: list[Event] = []
        skipped = 0
        for stream, entries in reply or []:
            queue = by_stream[stream.decode() if isinstance(stream, bytes) else stream]
            for entry_id, fields in entries:
                positions[queue] = entry_id
                try:
                    events.extend(_decode_event(queue, entry_id, fields))
                except Exception:  # a corrupt entry must not stop the feed
                    skipped += 1
        return events, skipped


def _decode_event(queue: str, entry_id: bytes, fields: Any) -> list[Event]:
    if isinstance(fields, list):  # a raw reply: [field, value, ...]
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    at_ms = int(entry_id.split(b"-", 1)[0])
    return [
        Event(queue, str(job_id), JobState(state), at_ms)
        for job_id, state in load_json(fields[b"d"])
    ]


class EnqueueRefused(OutOfMemoryError):
    """Redis ran out of memory during an enqueue of several script calls: each call is
    atomic (the first write of a script is refused whole, see :func:`created_flags`), and
    ``created`` says, per job, True or False as :meth:`JobCommands.enqueue` does, or None
    where its call was refused."""

    def __init__(self, message: str, created: list[bool | None]) -> None:
        super().__init__(message)
        self.created = created


def created_flags(sizes: Sequence[int], replies: Sequence[Any]) -> list[bool]:
    """The created flags of an enqueue's script calls, from their replies (``sizes``: the
    jobs of each call, 0 for a reply that is not a call's). An error reply is raised;
    when each is Redis out of memory, :class:`EnqueueRefused` says what was written.
    Redis refuses a script for lack of memory at its first write only, so a refused call
    wrote nothing, and a call that began writing finished."""
    created: list[bool | None] = []
    refused: BaseException | None = None
    for size, reply in zip(sizes, replies, strict=True):
        if isinstance(reply, BaseException):
            if not is_out_of_memory(reply):
                raise reply
            refused = refused or reply
            created += [None] * size
        elif size:
            created += (bool(c) for c in reply)
    if refused is not None:
        raise EnqueueRefused(str(refused), created)
    return created  # type: ignore[return-value]  # no None without a refusal


def _refused_call(exc: ResponseError) -> bool:
    """Whether an error reply is about the call itself (Redis gives every error of a script
    or of the protocol the generic code ERR), rather than about the server's state (OOM,
    BUSY, READONLY, LOADING, WRONGTYPE, NOPERM...), which the same call may outlive."""
    return str(exc).startswith(("ERR ", "Protocol error", "user_script", "Error running script"))


def enqueue_call(
    lists: _QueueKeyLists, jobs: Sequence[NewJob], events_maxlen: int
) -> tuple[list[str], list[Any]]:
    """KEYS (with only the streams of the bands used) and ARGV of one enqueue call."""
    keys, runs = _runs(lists, jobs)
    argv: list[Any] = [GROUP, events_maxlen]
    for band, slot, delay_ms, run in runs:
        argv += (len(run), band, slot, delay_ms)
        for job in run:
            argv += (job.id, job.record)
    return keys, argv


def enqueue_command(
    heads: dict[tuple[str, ...], bytes],
    sha: str,
    lists: _QueueKeyLists,
    jobs: Sequence[NewJob],
    events_maxlen: int,
) -> bytes:
    """The EVALSHA of :func:`enqueue_call`, encoded. A producer's hot path: each run's four
    values, and each job's two, are encoded by one formatting operation (ids are ASCII,
    bands 0-9)."""
    keys, runs = _runs(lists, jobs)
    parts, count = [_enqueue_options(events_maxlen)], 2
    for band, slot, delay_ms, run in runs:
        size, delay = b"%d" % len(run), b"%d" % delay_ms
        parts.append(
            b"$%d\r\n%b\r\n$1\r\n%d\r\n$%d\r\n%d\r\n$%d\r\n%b\r\n"
            % (len(size), size, band, len(str(slot)), slot, len(delay), delay)
        )
        for job in run:
            job_id, record = job.id.encode(), job.record
            parts.append(b"$%d\r\n%b\r\n$%d\r\n%b\r\n" % (len(job_id), job_id, len(record), record))
        count += 4 + 2 * len(run)
    return encode_evalsha(heads, sha, keys, (), (b"".join(parts), count))


def encode_completion(completion: Completion) -> tuple[bytes, int]:
    """The values finish.lua reads for a completion (:meth:`Completion.argv`) in the
    protocol's form, and how many: a success's with one formatting operation (the worker's
    hot path). Lengths count bytes: a token holds the worker's id, and so its host name,
    which may be any text."""
    if completion.next_state != "succeeded":
        argv = completion.argv()
        return encode_command(argv).split(b"\r\n", 1)[1], len(argv)
    ttl, result = b"%d" % completion.result_ttl_ms, completion.result
    job_id, token = completion.job_id.encode(), completion.token.encode()
    return (
        b"$1\r\nS\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n"
        % (
            len(job_id), job_id, len(token), token,
            len(result), result, len(ttl), ttl,
        ),
        5,
    )  # fmt: skip


@cache
def _enqueue_options(events_maxlen: int) -> bytes:
    """The first two arguments of every enqueue call, encoded."""
    return encode_command([GROUP, events_maxlen]).split(b"\r\n", 1)[1]


def _runs(
    lists: _QueueKeyLists, jobs: Sequence[NewJob]
) -> tuple[list[str], list[tuple[int, int, int, list[NewJob]]]]:
    """The enqueue script's KEYS, with the streams of the bands used, and the jobs cut into
    runs of one band and delay, each with the index of its band's stream among the KEYS'
    streams (1-based): (band, index, delay ms, jobs)."""
    keys = list(lists.enqueue)
    slots: dict[int, int] = {}
    runs: list[tuple[int, int, int, list[NewJob]]] = []
    for job in jobs:
        if runs and runs[-1][0] == job.band and runs[-1][2] == job.delay_ms:
            runs[-1][3].append(job)
            continue
        slot = slots.get(job.band)
        if slot is None:
            keys.append(lists.streams[job.band])
            slot = slots[job.band] = len(slots) + 1
        runs.append((job.band, slot, job.delay_ms, [job]))
    return keys, runs
