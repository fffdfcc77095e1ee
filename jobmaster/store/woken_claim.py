"""The claim of an idle worker, written behind its blocking read: one round trip from an
enqueue to a started job.

An idle worker blocks on ``XREAD`` of its queues' streams. Sent after the read returned,
its claim costs a second round trip between the enqueue and the job's start (and, on an
idle machine, a second wake-up of both processes). Here the claim is written on the read's
connection right behind the read: Redis runs it the moment the read returns (an entry came,
or the block timed out), and its reply follows the read's. It is the usual claim
(claim.lua: leases, attempts, events) with the caller's claim id: if its reply is lost, the
same claim sent again with that id answers with the jobs it started.

A claim that was written is always answered and its jobs started: a wait that must end
early (the worker stops or pauses, a queue is resumed) is ended by ``CLIENT UNBLOCK`` from
another connection, so the read returns empty and the claim runs at once. Only where the
caller cannot wait for that answer (Redis does not answer the unblock in time, the wait is
cancelled) is the read's connection closed, which drops the claim if it has not run; if it
had, its jobs come back to the caller's next claim with the same id (``again``), or to the
reclaim once their lease expires.

On one server only (or behind sentinels): on a cluster each queue is a slot of its own, and
an idle worker waits on its queues' slots at once, then claims.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from redis.exceptions import ConnectionError, NoScriptError, ResponseError

from jobmaster.scripts import source
from jobmaster.store.connection import StoreConnection
from jobmaster.store.jobs import JobCommands
from jobmaster.store.replies import claim_reply
from jobmaster.store.types import Claim
from jobmaster.transport.resp import encode_evalsha

COMMANDS = ("CLIENT ID", "CLIENT UNBLOCK")
"""What a woken claim needs besides what every worker does: a worker whose Redis user may
not run them claims after its read returns."""

UNBLOCK_TIMEOUT = 2.0
"""How long an early end of the wait waits for the claim's answer before dropping it."""


class WokenClaim:
    """A blocking read with a claim behind it, written and not yet answered."""

    def __init__(
        self,
        conn: StoreConnection,
        ident: asyncio.Future[Any],
        entries: asyncio.Future[Any],
        reply: asyncio.Future[Any],
        on_claim: Callable[[Claim], None],
    ) -> None:
        self._conn = conn
        self._ident = ident
        self._entries = entries
        self._reply = reply
        self._on_claim = on_claim
        self._claimed: Claim | None = None
        self._failed: BaseException | None = None
        reply.add_done_callback(self._answered)

    def _answered(self, reply: asyncio.Future[Any]) -> None:
        """The claim's answer, handed to ``on_claim`` as soon as it comes (its jobs start
        before the waiting caller resumes)."""
        if reply.cancelled() or reply.exception() is not None:
            return
        try:
            self._claimed = claim_reply(reply.result())
            self._on_claim(self._claimed)
        except Exception as exc:  # raised to the caller by claim()
            self._failed = exc

    async def answered(self) -> None:
        """Wait until the claim has answered (or failed)."""
        await asyncio.wait([self._reply])

    async def end_early(self) -> None:
        """End the wait now: the read returns empty and the claim runs at once."""
        if self._reply.done():
            return
        try:
            async with asyncio.timeout(UNBLOCK_TIMEOUT):
                ident = await self._ident
                assert self._conn.fast is not None
                await self._conn.fast.execute("CLIENT", "UNBLOCK", ident)
                await self.answered()
        except Exception:  # Redis is gone or frozen: drop the claim with its connection
            await self.drop()

    async def drop(self) -> None:
        """Give up on the claim: close its connection (dropping it, if it has not run)."""
        await self._conn.reader("entries").drop()

    def raise_read_error(self) -> None:
        """Raise the error Redis answered the read with, if it did."""
        if self._entries.done() and not self._entries.cancelled():
            error = self._entries.exception()
            if isinstance(error, ResponseError):
                raise error

    async def claim(self) -> Claim | None:
        """The claim's answer, once :meth:`answered` (``on_claim`` has had it): None when it
        did not run (Redis lost the script: it is loaded again for the next claim).

        Raises:
            redis.exceptions.ConnectionError: the connection was lost: the claim may have run
                (send the next claim with the same id, ``again``).
            redis.exceptions.ResponseError: Redis refused the read or the claim.
        """
        if self._failed is not None:
            raise self._failed
        if self._claimed is not None:
            return self._claimed
        try:
            self._reply.result()
        except asyncio.CancelledError as exc:
            raise ConnectionError("the claim's connection was closed") from exc
        except NoScriptError:
            assert self._conn.fast is not None
            await self._conn.fast.execute("SCRIPT", "LOAD", source("claim"))
            return None
        raise AssertionError("a claim answered without being handed on")  # pragma: no cover


class WokenClaims:
    """Claims written behind the blocking read of an idle worker (see the module)."""

    def __init__(self, conn: StoreConnection, jobs: JobCommands) -> None:
        self._conn = conn
        self._jobs = jobs
        self._claim = conn.script("claim")  # its text is built on first use
        self._heads: dict[tuple[str, ...], bytes] = {}
        self.available = conn.fast is not None and conn.blocking_reads and not conn.cluster
        """Whether the store can (one server, multiplexed connections)."""

    async def wait_then_claim(
        self,
        newest: Mapping[str, Sequence[bytes]],
        timeout_ms: int,
        queue: str,
        consumer: str,
        count: int,
        lease_ms: int,
        hostname: str,
        pid: int,
        *,
        claim_id: str,
        suspects: int,
        resources: str,
        on_claim: Callable[[Claim], None],
    ) -> WokenClaim:
        """Block until an entry newer than ``newest`` (per queue, per band, as
        :meth:`JobCommands.wait_for_entries`) is added or ``timeout_ms`` passed, then
        claim from ``queue`` as :meth:`JobCommands.claim` would; ``on_claim`` is given the
        claim as soon as it answers."""
        keys, argv = self._jobs.claim_call(
            queue, consumer, count, lease_ms, hostname, pid, claim_id=claim_id,
            suspects=suspects, resources=resources,
        )  # fmt: skip
        command = encode_evalsha(self._heads, self._claim.sha, keys, argv)
        streams = self._jobs.entry_streams(newest)
        reader = self._conn.reader("entries")
        ident, entries, reply = await reader.read_then(streams, max(1, timeout_ms), command)
        return WokenClaim(self._conn, ident, entries, reply, on_claim)
