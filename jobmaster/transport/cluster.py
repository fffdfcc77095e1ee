"""The fast path on Redis Cluster: one multiplexed connection per master, each command
routed by the hash slot of its first key.

Every jobmaster script touches the keys of one queue, which share the hash tag ``{queue}``,
so the slot of a script's first key is the slot of all of them. The slot map comes from
``CLUSTER SLOTS`` (asked of any node that answers: the seeds of the URL, then the nodes
seen since), read at the first call and again after a ``MOVED`` reply (a resharding moved
the slot, or a replica took over) or a lost connection (a master died). ``ASK`` (a slot in
the middle of a migration) sends the command once to the node named, after ``ASKING``.
``TRYAGAIN`` and ``CLUSTERDOWN`` (a migration of the keys, an election) are retried after
a short wait, up to :data:`MAX_REDIRECTS` times in all.

A connection error is not retried here beyond what :class:`MultiplexedConnection` does
(once, on a new connection): the slot map is read again on the next call, and callers that
retry (the worker's loops, a producer's own retry) then reach the new master.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.crc import key_slot
from redis.exceptions import ConnectionError, NoScriptError, ResponseError

from jobmaster.transport.address import ClusterSeeds
from jobmaster.transport.multiplexed import MultiplexedConnection
from jobmaster.transport.resp import encode_command, encode_evalsha

SLOTS = 16384
MAX_REDIRECTS = 16
"""Redirections a command follows at once; past them, it pauses before each."""

REFUSAL_WINDOW = 10.0
"""Seconds a command is sent again while the cluster refuses it (``TRYAGAIN``,
``CLUSTERDOWN``, redirections) before the refusal is raised."""

RETRY_PAUSES = (0.01, 0.05, 0.1, 0.25, 0.5)
"""Seconds to wait before sending again a command refused with ``TRYAGAIN`` or
``CLUSTERDOWN``, one after the other (the last one repeats)."""

T = TypeVar("T")
Node = tuple[str, int]


def slot_of(key: str | bytes, cache: dict[str | bytes, int] | None = None) -> int:
    """The hash slot of a key (of its ``{tag}``, when it has one)."""
    if cache is not None:
        slot = cache.get(key)
        if slot is None:
            slot = cache[key] = key_slot(key.encode() if isinstance(key, str) else key)
            if len(cache) > 65536:
                cache.clear()
        return slot
    return key_slot(key.encode() if isinstance(key, str) else key)


def redirection(exc: BaseException) -> tuple[str, Node] | None:
    """``("MOVED" | "ASK", node)`` for a redirection error reply, else None."""
    if not isinstance(exc, ResponseError):
        return None
    kind, _, rest = str(exc).partition(" ")
    if kind not in ("MOVED", "ASK"):
        return None
    host, _, port = rest.rpartition(" ")[2].rpartition(":")
    return kind, (host, int(port))


def is_cluster_refusal(exc: BaseException) -> bool:
    """Whether an error reply is Redis Cluster's: a redirection, or a refusal that passes
    (``TRYAGAIN``, ``CLUSTERDOWN``): the same command, sent again, can succeed."""
    return isinstance(exc, ResponseError) and str(exc).startswith(
        ("MOVED ", "ASK ", "TRYAGAIN", "CLUSTERDOWN")
    )


def first_key(args: Sequence[Any]) -> Any:
    """The key a command is routed by: the first stream of an ``XREAD``/``XREADGROUP``,
    else its first argument."""
    name = str(args[0]).upper()
    if name in ("XREAD", "XREADGROUP"):
        for i, arg in enumerate(args):
            if isinstance(arg, str | bytes) and str(arg).upper() == "STREAMS":
                return args[i + 1]
    if name in ("EVALSHA", "EVAL"):
        return args[3]
    return args[1]


class ClusterConnection:
    """Multiplexed connections to the masters of a Redis Cluster, each command routed by
    the slot of its key; the same calls as :class:`MultiplexedConnection`."""

    def __init__(self, url: str, *, timeout: float = 30.0, connect_timeout: float = 5.0) -> None:
        self.seeds = ClusterSeeds.parse(url)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._nodes: dict[Node, MultiplexedConnection] = {}
        self._slots: list[Node] | None = None
        self._refreshing: asyncio.Future[None] | None = None
        self._slot_cache: dict[str | bytes, int] = {}
        self._heads: dict[tuple[str, ...], bytes] = {}
        self._closed = False
        self.refreshes = 0
        """How many times the slot map was read (for tests and diagnostics)."""

    # -- routing -----------------------------------------------------------------------------

    def slot(self, key: str | bytes) -> int:
        return slot_of(key, self._slot_cache)

    async def node_for(self, key: str) -> MultiplexedConnection:
        """The connection to the master that serves ``key``'s slot."""
        slots = self._slots
        if slots is None:
            await self.refresh()
            slots = self._slots
            assert slots is not None
        return self._node(slots[self.slot(key)])

    def _node(self, node: Node) -> MultiplexedConnection:
        conn = self._nodes.get(node)
        if conn is None:
            if self._closed:
                raise ConnectionError("the connection is closed")
            conn = self._nodes[node] = MultiplexedConnection(
                self.seeds.address(*node),
                timeout=self.timeout,
                connect_timeout=self.connect_timeout,
            )
        return conn

    async def refresh(self) -> None:
        """Read the slot map again (one reading at a time; callers share it)."""
        if self._refreshing is None:
            self._refreshing = asyncio.ensure_future(self._read_slots())
            self._refreshing.add_done_callback(self._refreshed)
        await asyncio.shield(self._refreshing)

    def _refreshed(self, future: asyncio.Future[None]) -> None:
        self._refreshing = None
        if not future.cancelled():
            future.exception()  # retrieved: each waiter gets it from the shield

    async def _read_slots(self) -> None:
        """``CLUSTER SLOTS`` from the first node that answers, on a connection of its own
        (the nodes' connections may be held by blocking reads)."""
        candidates = list(dict.fromkeys([*self._nodes, *self.seeds.nodes]))
        errors = []
        for node in candidates:
            probe = MultiplexedConnection(
                self.seeds.address(*node), timeout=self.timeout, connect_timeout=1.0
            )
            try:
                reply = await probe.execute("CLUSTER", "SLOTS")
            except (ConnectionError, ResponseError, OSError) as exc:
                errors.append(f"{node[0]}:{node[1]}: {exc}")
                continue
            finally:
                await probe.close()
            self._slots = slot_table(reply)
            self.refreshes += 1
            return
        raise ConnectionError("no node of the Redis Cluster answered: " + "; ".join(errors))

    async def _routed(
        self,
        key: Any,
        call: Callable[[MultiplexedConnection], Awaitable[T]],
        asking: Callable[[MultiplexedConnection], Awaitable[T]],
    ) -> T:
        """``call`` on the node of ``key``'s slot, following redirections, and sending it
        again after a pause while the cluster refuses it for a while (``TRYAGAIN`` while a
        slot's keys are split between two nodes, ``CLUSTERDOWN`` during an election), up to
        :data:`REFUSAL_WINDOW` seconds."""
        deadline = time.monotonic() + REFUSAL_WINDOW
        for attempt in itertools.count():
            node = await self.node_for(key)
            try:
                return await call(node)
            except ConnectionError:
                self._slots = None  # a master may have died: read the map again next time
                raise
            except ResponseError as exc:
                refusal: ResponseError = exc
            moved = redirection(refusal)
            if moved is not None and moved[0] == "ASK":
                try:
                    return await asking(self._node(moved[1]))
                except ResponseError as again:
                    refusal = again
            if not is_cluster_refusal(refusal) or time.monotonic() > deadline:
                raise refusal
            if redirection(refusal) is None:  # TRYAGAIN, CLUSTERDOWN: they pass
                await asyncio.sleep(RETRY_PAUSES[min(attempt, len(RETRY_PAUSES) - 1)])
            if attempt >= MAX_REDIRECTS:  # redirected round and round: slow down
                await asyncio.sleep(RETRY_PAUSES[-1])
            await self.refresh()
        raise AssertionError("unreachable")

    # -- the calls of MultiplexedConnection --------------------------------------------------

    async def execute(self, *args: Any) -> Any:
        """Send one keyed command to the node of its key and return its reply."""
        command = encode_command(args)
        return await self._routed(
            first_key(args),
            lambda node: node.execute(*args),
            lambda node: node.asking(command),
        )

    async def evalsha(
        self,
        sha: str,
        script: str,
        keys: Sequence[str],
        args: Sequence[Any],
        encoded: tuple[bytes, int] = (b"", 0),
        *,
        resend: bool = True,
    ) -> Any:
        """Run a script on the node of its first key's slot (see
        :meth:`MultiplexedConnection.evalsha`)."""

        async def asking(node: MultiplexedConnection) -> Any:
            command = encode_evalsha(self._heads, sha, keys, args, encoded)
            try:
                return await node.asking(command)
            except NoScriptError:
                await node.execute("SCRIPT", "LOAD", script)
                return await node.asking(command)

        return await self._routed(
            keys[0],
            lambda node: node.evalsha(sha, script, keys, args, encoded, resend=resend),
            asking,
        )

    async def execute_blocking(self, block_seconds: float, *args: Any) -> Any:
        """A blocking command (``XREAD BLOCK``) on the node of its key; its keys must share
        a slot. Give each slot's blocking reads a connection of their own."""
        command = encode_command(args)
        return await self._routed(
            first_key(args),
            lambda node: node.execute_blocking(block_seconds, *args),
            lambda node: node.asking(command),
        )

    async def close(self) -> None:
        self._closed = True
        nodes, self._nodes = list(self._nodes.values()), {}
        for conn in nodes:
            await conn.close()


def slot_table(reply: Any) -> list[Node]:
    """The master of each slot, from a ``CLUSTER SLOTS`` reply."""
    table: list[Node | None] = [None] * SLOTS
    for start, end, master, *_ in reply:
        host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
        node = (host, int(master[1]))
        for slot in range(int(start), int(end) + 1):
            table[slot] = node
    missing = table.count(None)
    if missing:
        raise ConnectionError(f"the Redis Cluster serves no node for {missing} slots")
    return [n for n in table if n is not None]
