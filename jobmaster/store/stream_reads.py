"""Blocking reads of streams of several queues (:class:`StreamReader`), on one server and on
Redis Cluster.

On one server, one ``XREAD BLOCK`` covers the streams of every queue. On a cluster a command
may only touch keys of one slot, and each queue is a slot of its own (``{queue}``): the
streams are read slot by slot, each slot's read on a connection of its own (a blocked read
holds its connection), all at once, and the call returns when one of them brings entries
(with whatever the others brought by then) or all of them timed out. A read that has not
returned is kept in flight rather than abandoned: the next call asking the same of that slot
waits on it instead of queueing a second read behind it on the same connection. A read in
flight that asks something else (newer positions) is abandoned with its connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from redis.asyncio import Redis

from jobmaster.transport.clients import FastConnection
from jobmaster.transport.cluster import slot_of
from jobmaster.transport.multiplexed import MultiplexedConnection
from jobmaster.transport.resp import encode_command

_CLIENT_ID = encode_command(("CLIENT", "ID"))

StreamReply = list[Any]
"""``XREAD``'s reply: ``[stream, [[entry id, fields], ...]]`` per stream that had entries
(fields as a list, or a dict where redis-py read them)."""


class StreamReader:
    """Blocking ``XREAD``s for one purpose (work, timers, cancellations, events...).

    Args:
        redis: redis-py's client, used when ``new_connection`` is None.
        new_connection: makes a multiplexed connection for the blocking reads.
        cluster: the streams live on a Redis Cluster: read them slot by slot.
    """

    def __init__(
        self,
        redis: Redis,
        new_connection: Callable[[], FastConnection] | None,
        *,
        cluster: bool,
    ) -> None:
        self._redis = redis
        self._new_connection = new_connection
        self._cluster = cluster
        self._connections: dict[int, FastConnection] = {}
        self._in_flight: dict[int, tuple[tuple[Any, ...], asyncio.Future[Any]]] = {}
        self._slot_cache: dict[str | bytes, int] = {}

    async def xread(
        self, streams: Mapping[Any, Any], *, count: int | None = None, block_ms: int | None = None
    ) -> StreamReply:
        """Entries after the given ids (``{stream: id}``), waiting up to ``block_ms``."""
        if not streams:
            return []
        if not self._cluster:
            return await self._read(0, streams, count, block_ms) or []
        by_slot: dict[int, dict[Any, Any]] = {}
        for stream, position in streams.items():
            by_slot.setdefault(slot_of(stream, self._slot_cache), {})[stream] = position
        if len(by_slot) == 1:
            ((slot, part),) = by_slot.items()
            return await self._read(slot, part, count, block_ms) or []
        futures = {self._start(slot, part, count, block_ms): slot for slot, part in by_slot.items()}
        pending = set(futures)
        replies: StreamReply = []
        try:
            while pending and not replies:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    self._in_flight.pop(futures[future], None)
                    replies.extend(future.result() or [])
        finally:
            if self._new_connection is None:  # redis-py's reads go with their caller
                for future in pending:
                    self._in_flight.pop(futures[future], None)
                    future.cancel()
        return replies

    async def _read(
        self, slot: int, streams: Mapping[Any, Any], count: int | None, block_ms: int | None
    ) -> Any:
        future = self._start(slot, streams, count, block_ms)
        try:
            reply = await asyncio.shield(future)
        except asyncio.CancelledError:
            # On a connection of its own the read stays in flight (the next call asking
            # the same takes it up); redis-py's is cancelled with its caller.
            if self._new_connection is None:
                self._in_flight.pop(slot, None)
                future.cancel()
            raise
        self._in_flight.pop(slot, None)
        return reply

    def _start(
        self, slot: int, streams: Mapping[Any, Any], count: int | None, block_ms: int | None
    ) -> asyncio.Future[Any]:
        """The read of one slot's streams: the one in flight if it asks the same."""
        options = [] if count is None else ["COUNT", count]
        if block_ms is not None:
            options += ["BLOCK", block_ms]
        command = ("XREAD", *options, "STREAMS", *streams, *streams.values())
        flight = self._in_flight.get(slot)
        if flight is not None:
            if flight[0] == command:
                return flight[1]
            self._abandon(slot)
        future = asyncio.ensure_future(self._send(slot, command, streams, count, block_ms))
        future.add_done_callback(_consume)
        self._in_flight[slot] = (command, future)
        return future

    async def _send(
        self,
        slot: int,
        command: tuple[Any, ...],
        streams: Mapping[Any, Any],
        count: int | None,
        block_ms: int | None,
    ) -> Any:
        if self._new_connection is None:
            return await self._redis.xread(dict(streams), count=count, block=block_ms)
        conn = self._connections.get(slot)
        if conn is None:
            conn = self._connections[slot] = self._new_connection()
        return await conn.execute_blocking((block_ms or 0) / 1000, *command)

    async def read_then(
        self, streams: Mapping[Any, Any], block_ms: int, then: bytes
    ) -> tuple[asyncio.Future[Any], asyncio.Future[Any], asyncio.Future[Any]]:
        """On one server: ``CLIENT ID``, then a blocking read of ``streams`` (one entry at
        most), then the encoded command ``then``, written back to back on the read's
        connection; the futures of their three replies. Redis runs ``then`` the moment the
        read returns. ``CLIENT UNBLOCK`` of that id from another connection ends the read
        early. A read in flight is abandoned first."""
        assert self._new_connection is not None
        assert not self._cluster
        if 0 in self._in_flight:
            self._abandon(0)
        conn = self._connections.get(0)
        if conn is None:
            conn = self._connections[0] = self._new_connection()
        assert isinstance(conn, MultiplexedConnection)
        read = encode_command(("XREAD", "COUNT", 1, "BLOCK", block_ms, "STREAMS", *streams,
                               *streams.values()))  # fmt: skip
        ident, entries, reply = await conn.write_blocking(block_ms / 1000, [_CLIENT_ID, read, then])
        for future in (ident, entries, reply):
            future.add_done_callback(_consume)
        return ident, entries, reply

    async def drop(self) -> None:
        """Close the connection of the one-server reads (what was written on it and not
        run yet is dropped with it)."""
        conn = self._connections.pop(0, None)
        self._in_flight.pop(0, None)
        if conn is not None:
            await conn.close()

    def _abandon(self, slot: int) -> None:
        """Drop a read in flight, and its connection (still held by the read)."""
        _, future = self._in_flight.pop(slot)
        if not future.done():
            future.cancel()
            conn = self._connections.pop(slot, None)
            if conn is not None:
                task = asyncio.ensure_future(conn.close())
                task.add_done_callback(_consume)

    async def close(self) -> None:
        """Close the connections (reads in flight fail)."""
        futures = [future for _, future in self._in_flight.values()]
        self._in_flight.clear()
        for future in futures:
            future.cancel()
        connections, self._connections = list(self._connections.values()), {}
        for conn in connections:
            await conn.close()
        if futures:
            await asyncio.wait(futures, timeout=1.0)


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve a future's outcome, so that an abandoned one is not reported."""
    if not future.cancelled():
        future.exception()
