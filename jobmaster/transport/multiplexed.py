"""One shared, pipelined Redis connection for the hot path's script calls.

A profile of a producer enqueueing one job at a time showed redis-py's per-call machinery
(argument encoding, the pool's timed wait for a connection, per-call timeouts) at five
times the cost of the script itself. Here every caller of an event loop writes its command
to one connection and awaits a future; replies come back in order (Redis answers the
commands of a connection in the order they came) and resolve the futures in turn. Callers
that run concurrently are pipelined by the socket for free.

It serves non-blocking commands only (the scripts); blocking reads, pipelines and everything
else stay on redis-py. Errors are redis-py's own exception types, so callers handle both
paths alike: :class:`redis.exceptions.ConnectionError` when the connection is refused or
lost (every pending call fails; the next call reconnects), :class:`redis.exceptions.
TimeoutError` when Redis does not answer within ``timeout`` (the connection is dropped),
and :class:`redis.exceptions.ResponseError` (:class:`NoScriptError` for ``NOSCRIPT``) for
error replies. Like redis-py's default retry, a call that finds its connection closed (by
the server's idle timeout, a proxy, a restart) is sent once more on a new one: every script
jobmaster sends can be repeated (enqueue skips ids that exist, the end of an attempt checks
its lease token and recognises its own earlier write; a claim is sent again by its caller,
asking for the jobs it started: see ``resend``).

Where it connects is asked anew at each connection (:mod:`.sentinel`): the URL's server,
or the master the sentinels name. A ``READONLY`` or ``UNBLOCKED`` reply (the server was
made a replica) drops the connection like a lost one, so the call is sent again to the
master of the moment.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import hiredis
from redis.exceptions import ConnectionError, NoScriptError, TimeoutError

from jobmaster.transport.address import Address
from jobmaster.transport.resp import encode_command, encode_evalsha, error_reply
from jobmaster.transport.sentinel import CONNECTION_LOST_REPLIES, locator


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: MultiplexedConnection) -> None:
        self.owner = owner
        self.reader = hiredis.Reader()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport of the running loop (uvloop's do not subclass asyncio.Transport)
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        pending = self.owner._pending
        while (reply := reader.gets()) is not False:
            if not pending:  # a reply nobody waits for: the stream is out of step
                self.owner._drop(self, ConnectionError("unexpected reply from Redis"))
                return
            future, _ = pending.popleft()
            if isinstance(reply, hiredis.ReplyError):
                message = str(reply)
                if message.startswith(CONNECTION_LOST_REPLIES):  # a master made a replica:
                    lost = ConnectionError(f"the server is no longer the master ({message})")
                    if not future.done():  # the next connection asks where the master is
                        future.set_exception(lost)
                    self.owner._drop(self, lost)
                    return
                if not future.done():
                    future.set_exception(error_reply(message))
            elif not future.done():
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._drop(self, ConnectionError(f"connection to Redis lost ({exc or 'closed'})"))


class MultiplexedConnection:
    """Commands of one event loop over one connection, replies matched in order."""

    def __init__(
        self, url: str | Address, *, timeout: float = 30.0, connect_timeout: float = 5.0
    ) -> None:
        # redis://, redis+sentinel://, or the address of a cluster's node
        self._locator = locator(url, connect_timeout)
        self.address = self._locator.address
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self._pending: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._watchdog: asyncio.TimerHandle | None = None
        self._closed = False
        self._heads: dict[tuple[str, ...], bytes] = {}

    async def execute(self, *args: Any) -> Any:
        """Send one command and return its reply."""
        return await self._call(encode_command(args))

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
        """Run a script by its digest, loading it first if Redis does not know it
        (``encoded``: as :func:`encode_evalsha`'s). Without ``resend``, a connection found
        closed raises rather than sending the call again (the caller sends it again its own
        way: it may have run)."""
        command = encode_evalsha(self._heads, sha, keys, args, encoded)
        try:
            return await self._call(command, resend)
        except NoScriptError:
            await self.execute("SCRIPT", "LOAD", script)
            return await self._call(command, resend)

    async def execute_blocking(self, block_seconds: float, *args: Any) -> Any:
        """Send a command that Redis may hold for up to ``block_seconds`` (``XREAD BLOCK``)
        and return its reply; the timeout counts from the end of the block. Nothing else
        can be answered on this connection meanwhile: give blocking reads one of their own."""
        command = encode_command(args)
        protocol = self._protocol or await self._connect()
        try:
            return await self._send(protocol, command, block_seconds)
        except ConnectionError:  # closed while idle, as in _call
            return await self._send(await self._connect(), command, block_seconds)

    async def write_blocking(
        self, block_seconds: float, commands: Sequence[bytes]
    ) -> list[asyncio.Future[Any]]:
        """Write encoded commands back to back, the first of which Redis may hold for up to
        ``block_seconds``, and return the futures of their replies: Redis runs the others
        the moment the first returns, with no round trip in between. Sent once: on a lost
        connection every future fails."""
        protocol = self._protocol or await self._connect()
        return [self._send(protocol, command, block_seconds) for command in commands]

    async def node_for(self, key: str) -> MultiplexedConnection:
        """The connection that serves ``key``: this one (a cluster routes by slot)."""
        return self

    async def asking(self, command: bytes) -> Any:
        """Send ``ASKING`` and an encoded command back to back (Redis Cluster's answer for
        a key of a slot being moved to this node) and return the command's reply."""
        protocol = self._protocol or await self._connect()
        asking = self._send(protocol, encode_command(["ASKING"]))
        reply = self._send(protocol, command)
        await asking
        return await reply

    async def connect(self) -> None:
        """Open the connection now, if it is not open (before :meth:`submit`)."""
        if self._protocol is None:
            await self._connect()

    def submit(self, command: bytes) -> asyncio.Future[Any]:
        """Write an encoded command now and return the future of its reply, so that the
        caller can prepare the next call while Redis runs this one. No retry and no loading
        of scripts here: on an error, call :meth:`evalsha` with the same call."""
        if self._protocol is None:
            raise ConnectionError("not connected: await connect() first")
        return self._send(self._protocol, command)

    async def _call(self, command: bytes, resend: bool = True) -> Any:
        protocol = self._protocol
        if protocol is None:
            return await self._send(await self._connect(), command)
        try:
            return await self._send(protocol, command)
        except ConnectionError:
            if not resend:
                raise
            # A connection that served earlier calls may have been closed while idle (by
            # the server's timeout, a proxy, a restart): once more on a new one.
            return await self._send(await self._connect(), command)

    def _send(self, protocol: _Protocol, command: bytes, block: float = 0.0) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        assert protocol.transport is not None
        if protocol is not self._protocol:  # lost (dropped) since the caller took it
            future.set_exception(ConnectionError("connection to Redis lost"))
            return future
        protocol.transport.write(command)
        self._pending.append((future, time.monotonic() + block))
        if self._watchdog is None:
            self._watchdog = loop.call_later(self.timeout, self._check_timeouts)
        return future

    def _check_timeouts(self) -> None:
        self._watchdog = None
        if not self._pending or self._protocol is None:
            return
        oldest = self._pending[0][1]
        waited = time.monotonic() - oldest
        if waited >= self.timeout:
            self._drop(self._protocol, TimeoutError(f"Redis did not answer in {self.timeout:g}s"))
        else:
            loop = asyncio.get_running_loop()
            self._watchdog = loop.call_later(self.timeout - waited, self._check_timeouts)

    def _drop(self, protocol: _Protocol, exc: Exception) -> None:
        """Fail every pending call and forget the connection (the next call reconnects)."""
        if protocol is not self._protocol:
            return
        self._protocol = None
        if protocol.transport is not None:
            protocol.transport.abort()
        pending, self._pending = self._pending, deque()
        for future, _ in pending:
            if not future.done():
                future.set_exception(exc)
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    async def _connect(self) -> _Protocol:
        if self._closed:
            raise ConnectionError("the connection is closed")
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
            self._connecting.add_done_callback(self._connected)
        return await asyncio.shield(self._connecting)

    def _connected(self, future: asyncio.Future[_Protocol]) -> None:
        self._connecting = None
        if not future.cancelled() and future.exception() is None:
            self._protocol = future.result()
            if self._closed:  # closed while it connected (its callers gave up waiting)
                self._drop(self._protocol, ConnectionError("the connection was closed"))

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        protocol = _Protocol(self)
        try:
            async with asyncio.timeout(self.connect_timeout):
                address = self.address = await self._locator.locate()
                await loop.create_connection(lambda: protocol, address.host, address.port)
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(f"cannot connect to Redis at {self.address} ({exc})") from exc
        self._protocol = protocol  # so that the handshake's replies find their futures
        # written before anything else can be: the other callers wait for this to finish
        handshake = [self._send(protocol, encode_command(c)) for c in address.handshake()]
        try:
            for reply in handshake:
                await reply
        except BaseException:
            self._drop(protocol, ConnectionError("the connection handshake failed"))
            raise
        return protocol

    async def close(self) -> None:
        self._closed = True
        if self._protocol is not None:
            self._drop(self._protocol, ConnectionError("the connection was closed"))
