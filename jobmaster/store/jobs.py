"""Jobs through the hot path: enqueue, claim, finish, promotion, pruning, and the waits of an
idle worker."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError, NoScriptError, ResponseError

from jobmaster.codec import load_record
from jobmaster.store.connection import ENQUEUE_CHUNK, GROUP, QueueKeyLists, StoreConnection
from jobmaster.store.enqueueing import created_flags, enqueue_call, enqueue_command
from jobmaster.store.pipelined_enqueue import PipelinedEnqueue
from jobmaster.store.replication import scripts_then_wait
from jobmaster.store.replies import claim_reply, finish_reply, promote_reply
from jobmaster.store.types import Claim, Completion, NewJob, Promotion, Recorded, finish_values
from jobmaster.store.webhooks import NewDelivery, outbox_arguments
from jobmaster.transport.cluster import is_cluster_refusal
from jobmaster.transport.resp import encode_completions, encode_values

CLAIM_AGAIN = 9
"""Where claim.lua's ARGV holds its "sent before" flag (ARGV[10], 0-based here)."""


class JobCommands:
    """The hot path of jobs (each step one script call, batched over many jobs) and the
    upkeep of their queues."""

    def __init__(self, conn: StoreConnection) -> None:
        self._conn = conn
        self._redis = conn.redis
        self._keys = conn.keys
        self._fast = conn.fast
        self._lists = conn.lists
        self._events_maxlen = conn.events_maxlen
        self._enqueue = conn.script("enqueue")
        self._claim = conn.script("claim")
        self._finish_script = conn.script("finish")
        self._promote = conn.script("promote")
        self._prune = conn.script("prune")
        self._replication = conn.replication
        self._known_queues: set[str] = set()
        self._heads: dict[tuple[str, ...], bytes] = {}  # see transport.resp.encode_evalsha
        self._pipelined = PipelinedEnqueue(conn, self._enqueue, self._known_queues)

    # -- producing ---------------------------------------------------------------------------

    async def enqueue(self, queue: str, jobs: Sequence[NewJob]) -> list[bool]:
        """Create jobs; for each, False when its id already existed (nothing written)."""
        chunks = (jobs[i : i + ENQUEUE_CHUNK] for i in range(0, len(jobs), ENQUEUE_CHUNK))
        return await self.enqueue_batches(queue, chunks)

    async def enqueue_batches(self, queue: str, batches: Iterable[Sequence[NewJob]]) -> list[bool]:
        """:meth:`enqueue` of batches of at most ``ENQUEUE_CHUNK`` jobs. Over the multiplexed
        connection each batch is sent as soon as it is built (the iterable may build them
        lazily), so that Redis runs one while the next is being built."""
        lists = self._lists(queue)
        if self._fast is None:
            return await self._pipelined.enqueue(queue, lists, [b for b in batches if b])
        script = self._enqueue
        fast = await self._fast.node_for(lists.enqueue[0])  # on a cluster, the queue's master
        await fast.connect()
        pending: list[tuple[Sequence[NewJob], asyncio.Future[Any]]] = []
        for batch in batches:
            if batch:
                if not pending and queue not in self._known_queues:
                    await self._fast.execute("SADD", self._keys.queues, queue)
                command = enqueue_command(
                    self._heads, script.sha, lists, batch, self._events_maxlen
                )
                pending.append((batch, fast.submit(command)))
        replies = await asyncio.gather(*(p[1] for p in pending), return_exceptions=True)
        for number, ((batch, _), flags) in enumerate(zip(pending, replies, strict=True)):
            if isinstance(flags, NoScriptError | ConnectionError) or is_cluster_refusal(flags):
                # repeatable (fixed ids), routed again on a cluster
                try:
                    replies[number] = await script(*self._enqueue_call(lists, batch))
                except ResponseError as exc:
                    replies[number] = exc
        created = created_flags([len(p[0]) for p in pending], replies)
        self._known_queues.add(queue)
        if self._replication is not None and pending:
            acked = await fast.execute(*self._replication.command())
            self._replication.check(acked, "enqueue", created)
        return created

    def _enqueue_call(
        self, lists: QueueKeyLists, jobs: Sequence[NewJob]
    ) -> tuple[list[str], list[Any]]:
        return enqueue_call(lists, jobs, self._events_maxlen)

    async def record(self, queue: str, job_id: str) -> bytes | None:
        """A job's record (name, arguments, priority, creation time) as written."""
        raw: Any = await self._redis.hget(self._keys.queue(queue).jobs, job_id)  # type: ignore[misc]
        return None if raw is None else bytes(raw)

    async def names(self, queue: str, job_ids: Sequence[str]) -> list[str]:
        """The names of jobs ("" for a job whose record is gone or unreadable)."""
        if not job_ids:
            return []
        raws: Any = await self._redis.hmget(self._keys.queue(queue).jobs, list(job_ids))  # type: ignore[misc]
        return [_name_of(raw) for raw in raws]

    # -- the worker's hot path ---------------------------------------------------------------

    async def ensure_groups(self, queue: str) -> None:
        """Create the streams and consumer group of every band of a queue (idempotent)."""
        k = self._keys.queue(queue)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.sadd(self._keys.queues, queue)
            for stream in k.streams:
                pipe.xgroup_create(stream, GROUP, id="0", mkstream=True)
            replies = await pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
                raise reply
        self._known_queues.add(queue)

    async def claim(
        self, queue: str, consumer: str, count: int, lease_ms: int, hostname: str, pid: int, *,
        claim_id: str | None = None, again: bool = False, suspects: int | None = None,
        resources: str = "",
    ) -> Claim:  # fmt: skip
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
            resources: the caller's free resources (``"gpu=1,mem=8589934592"``; empty: it
                advertises none, and every job fits it).

        Raises:
            redis.exceptions.ResponseError: nothing was claimed and a band's stream could not
                be read (Redis's answer is in the message).
        """
        keys, argv = self.claim_call(
            queue, consumer, count, lease_ms, hostname, pid, claim_id=claim_id,
            again=again or self._fast is None,  # redis-py may send it again itself
            suspects=suspects, resources=resources,
        )  # fmt: skip
        try:
            reply = await self._claim(keys, argv, resend=False)
        except ConnectionError:  # it may have run: sent again, it answers as it did
            argv[CLAIM_AGAIN] = 1
            reply = await self._claim(keys, argv)
        return claim_reply(reply)

    def claim_call(
        self, queue: str, consumer: str, count: int, lease_ms: int, hostname: str, pid: int, *,
        claim_id: str | None = None, again: bool = False, suspects: int | None = None,
        resources: str = "",
    ) -> tuple[Sequence[str], list[Any]]:  # fmt: skip
        """The KEYS and ARGV of :meth:`claim`'s script call."""
        keys = self._lists(queue).claim_of(consumer)
        argv = [
            GROUP, consumer, count, lease_ms, hostname, pid, self._events_maxlen,
            claim_id or os.urandom(8).hex(), count if suspects is None else suspects,
            1 if again else 0, resources,
        ]  # fmt: skip
        return keys, argv

    async def finish(
        self,
        queue: str,
        completions: Sequence[Completion],
        retention_ms: int,
        outbox: Sequence[NewDelivery] = (),
    ) -> list[int]:
        """Record ended attempts: a :class:`Recorded` value for each (compare them with its
        members: they come back as plain integers).

        Idempotent: the same completions sent again (a reply was lost) answer ``RECORDED``
        for those written the first time. When Redis refuses the call itself (an error
        about the call, not about the server's state: a script error, a value over
        ``proto-max-bulk-len``), each completion is sent alone, and one that Redis still
        refuses is written as a failure that says why (``UnrecordableEnd``): one bad
        completion does not hold back the others.

        ``outbox``: webhook deliveries of these ends, each written in the same script call
        as its job's end (if that end is recorded now, with the state it is for)."""
        try:
            return await self._finish(queue, completions, retention_ms, outbox)
        except ResponseError as exc:
            if not _refused_call(exc):
                raise
        return [await self._finish_alone(queue, c, retention_ms, outbox) for c in completions]

    async def _finish_alone(
        self,
        queue: str,
        completion: Completion,
        retention_ms: int,
        outbox: Sequence[NewDelivery],
    ) -> int:
        own = [d for d in outbox if d.delivery.job_id == completion.job_id]
        try:
            return (await self._finish(queue, [completion], retention_ms, own))[0]
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
        self, queue: str, completions: Sequence[Completion], retention_ms: int,
        outbox: Sequence[NewDelivery] = (),
    ) -> list[int]:  # fmt: skip
        keys = self._lists(queue).finish
        argv: list[Any] = [retention_ms, self._events_maxlen]
        replication = self._replication
        deliveries = outbox_arguments(outbox)
        if self._fast is not None:
            parts = [encode_completions(completions)]
            if deliveries:
                parts.append((encode_values(deliveries), len(deliveries)))
            encoded = (b"".join(p[0] for p in parts), sum(p[1] for p in parts))
            recorded = await self._finish_script.call_encoded(keys, argv, encoded)
            if replication is not None:  # on the connection that wrote (the queue's master)
                node = await self._fast.node_for(keys[0])
                replication.check(await node.execute(*replication.command()), "finish")
            return finish_reply(recorded)
        argv += finish_values(completions)
        argv += deliveries
        if replication is None:
            return finish_reply(await self._finish_script(keys, argv))
        if self._conn.cluster:
            (recorded,), acked = await scripts_then_wait(
                cast(RedisCluster, self._redis), self._finish_script, [(keys, argv)], replication
            )
        else:
            async with self._redis.pipeline(transaction=False) as pipe:
                await self._finish_script(keys, argv, client=pipe)
                pipe.execute_command(*replication.command())
                recorded, acked = await pipe.execute(raise_on_error=False)
        if isinstance(recorded, BaseException):
            raise recorded
        replication.check(acked, "finish")
        return finish_reply(recorded)

    async def prune(self, queue: str, retention_ms: int, limit: int = 1000) -> int:
        """Forget finished jobs past the retention; returns how many were forgotten."""
        return int(await self._prune(self._lists(queue).prune, (retention_ms, limit)))

    async def forget_idle_consumers(self, queue: str, idle_ms: int) -> int:
        """Remove consumers (workers that died) holding no entries and idle for ``idle_ms``."""
        forgotten = 0
        for stream in self._keys.queue(queue).streams:
            try:
                consumers: Any = await self._redis.xinfo_consumers(stream, GROUP)
            except ResponseError:  # no such stream or group yet
                continue
            for consumer in consumers:
                if consumer["pending"] == 0 and consumer["idle"] >= idle_ms:
                    await self._redis.xgroup_delconsumer(stream, GROUP, consumer["name"])
                    forgotten += 1
        return forgotten

    async def forget_consumer(self, queue: str, consumer: str) -> None:
        """Remove a worker from the queue's consumer groups (it holds no entries by then)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream in self._keys.queue(queue).streams:
                pipe.xgroup_delconsumer(stream, GROUP, consumer)
            await pipe.execute(raise_on_error=False)

    async def promote(self, queue: str, limit: int = 1000) -> Promotion:
        """Move due scheduled jobs to their stream; says when the next one is due."""
        reply = await self._promote(self._lists(queue).promote, (limit, GROUP, self._events_maxlen))
        return promote_reply(reply)

    async def wait_for_entries(
        self, newest: Mapping[str, Sequence[bytes]], timeout_ms: int
    ) -> bool:
        """Block until an entry newer than ``newest`` (per queue, per band) is added (on
        the path from an enqueue to an idle worker starting its job)."""
        streams = self.entry_streams(newest)
        reader = self._conn.reader("entries")
        return bool(await reader.xread(streams, count=1, block_ms=max(1, timeout_ms)))

    def entry_streams(self, newest: Mapping[str, Sequence[bytes]]) -> dict[Any, Any]:
        """The streams (and the wake stream) of the queues, each with the position to read
        after."""
        streams: dict[Any, Any] = {}
        for queue, ids in newest.items():
            k = self._keys.queue(queue)
            for band, stream in enumerate((*k.streams, k.wake)):
                streams[stream] = ids[band] if band < len(ids) else b"0-0"
        return streams

    async def wait_for_timers(self, newest: dict[str, bytes], timeout_ms: int) -> bool:
        """Block until a job becomes due earlier than expected on one of the queues."""
        streams: dict[Any, Any] = {
            self._keys.queue(queue).timers: last for queue, last in newest.items()
        }
        reader = self._conn.reader("timers")  # a cancelled wait ends at once there
        return bool(await reader.xread(streams, count=1, block_ms=max(1, timeout_ms)))


def _name_of(raw: bytes | None) -> str:
    try:
        name = load_record(raw).get("n", "") if raw else ""
    except Exception:  # an unreadable record: the job is failed by the claim, not here
        return ""
    return name if isinstance(name, str) else ""


def _refused_call(exc: ResponseError) -> bool:
    """Whether an error reply is about the call itself (Redis gives every error of a script
    or of the protocol the generic code ERR), rather than about the server's state (OOM,
    BUSY, READONLY, LOADING, WRONGTYPE, NOPERM...), which the same call may outlive."""
    return str(exc).startswith(("ERR ", "Protocol error", "user_script", "Error running script"))
