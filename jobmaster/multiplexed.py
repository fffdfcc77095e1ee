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
"""

from __future__ import annotations

import asyncio
import builtins
import os
import socket
import struct
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote, urlparse

import hiredis
from redis.exceptions import ConnectionError, NoScriptError, ResponseError, TimeoutError


def encode_command(args: Sequence[Any]) -> bytes:
    """A command in the Redis protocol (RESP2): an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    append = parts.append
    for arg in args:
        kind = type(arg)
        if kind is bytes:
            value = arg
        elif kind is str:
            value = arg.encode()
        elif kind is int:
            value = b"%d" % arg
        elif kind is float:
            value = repr(arg).encode()
        elif isinstance(arg, bytes | bytearray | memoryview):
            value = bytes(arg)
        elif isinstance(arg, str):
            value = str(arg).encode()
        elif isinstance(arg, int) and not isinstance(arg, bool):
            value = b"%d" % arg
        else:
            raise TypeError(f"cannot send {type(arg).__name__} to Redis: {arg!r}")
        append(b"$%d\r\n%b\r\n" % (len(value), value))
    return b"".join(parts)


def encode_evalsha(
    heads: dict[tuple[str, ...], bytes],
    sha: str,
    keys: Sequence[str],
    args: Sequence[Any],
    encoded: tuple[bytes, int] = (b"", 0),
) -> bytes:
    """``EVALSHA sha numkeys keys... args...``; the part before the arguments is encoded once
    per script and keys, and kept in ``heads``. ``encoded``: more arguments, already in the
    protocol's form, and how many."""
    head = heads.get((sha, *keys))
    if head is None:
        head = encode_command(["EVALSHA", sha, len(keys), *keys]).split(b"\r\n", 1)[1]
        if len(heads) < 4096:
            heads[(sha, *keys)] = head
    body = encode_command(args).split(b"\r\n", 1)[1] if args else b""
    more, count = encoded
    return b"*%d\r\n%s%s%s" % (3 + len(keys) + len(args) + count, head, body, more)


@dataclass(frozen=True)
class Address:
    """Where a ``redis://`` URL points, and how to log in there."""

    host: str
    port: int
    username: str | None
    password: str | None
    db: int

    @classmethod
    def parse(cls, url: str) -> Address:
        parsed = urlparse(url)
        path = parsed.path.strip("/")
        return cls(
            host=parsed.hostname or "localhost",
            port=parsed.port or 6379,
            username=unquote(parsed.username) if parsed.username else None,
            password=unquote(parsed.password) if parsed.password else None,
            db=int(path) if path else 0,
        )

    def handshake(self) -> list[list[Any]]:
        """The commands a new connection sends first (AUTH, SELECT), if any."""
        commands: list[list[Any]] = []
        if self.password is not None:
            user = [] if self.username is None else [self.username]
            commands.append(["AUTH", *user, self.password])
        if self.db:
            commands.append(["SELECT", self.db])
        return commands

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def supports(url: str) -> bool:
    """Whether a Redis URL is one this connection speaks to (plain TCP, ``redis://``)."""
    parsed = urlparse(url)
    return parsed.scheme == "redis" and not parsed.query


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
            if not future.done():
                if isinstance(reply, hiredis.ReplyError):
                    future.set_exception(_error(str(reply)))
                else:
                    future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._drop(self, ConnectionError(f"connection to Redis lost ({exc or 'closed'})"))


def _set_blocking_timeout(sock: socket.socket, timeout: float) -> None:
    """Make a blocking socket's reads and writes fail after ``timeout`` seconds (with
    :class:`BlockingIOError`). Set in the kernel (``SO_RCVTIMEO``), it costs nothing per
    call, where Python's own socket timeout polls before every read and write: two more
    system calls per round trip. Where the option is missing, Python's timeout is used."""
    seconds = int(timeout)
    interval = struct.pack("ll", seconds, int((timeout - seconds) * 1_000_000))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, interval)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, interval)
    except (OSError, AttributeError):
        sock.settimeout(timeout)
    else:
        sock.settimeout(None)


def _error(message: str) -> ResponseError:
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    return ResponseError(message)


class MultiplexedConnection:
    """Commands of one event loop over one connection, replies matched in order."""

    def __init__(self, url: str, *, timeout: float = 30.0, connect_timeout: float = 5.0) -> None:
        self.address = Address.parse(url)
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
        address = self.address
        try:
            async with asyncio.timeout(self.connect_timeout):
                await loop.create_connection(lambda: protocol, address.host, address.port)
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(f"cannot connect to Redis at {address} ({exc})") from exc
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


_DONTWAIT: int = getattr(socket, "MSG_DONTWAIT", 0)
SPIN_BACKOFF_MAX = 64
"""Most reads that sleep at once, without spinning first, after spins that found nothing."""


def can_spin() -> bool:
    """Whether waiting for a reply by spinning can help: the socket has non-blocking reads,
    and this process may run on two cores or more (on one, a spinning caller would only
    delay the server it waits for, when that server shares the core)."""
    affinity = getattr(os, "sched_getaffinity", None)
    cores = len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
    return bool(_DONTWAIT) and cores > 1


class BlockingConnection:
    """The same protocol over a blocking socket, for synchronous producers (one per thread).

    With ``spin`` (seconds), a read first polls the socket for that long before it sleeps
    on it: a reply that comes within the spin is read without the wake-up of a sleeping
    thread, which on a loopback or a fast network is most of a round trip's time. A spin
    that ends empty-handed costs that much CPU, so after one the next read sleeps at once,
    then the next 2, 4, ... up to :data:`SPIN_BACKOFF_MAX` reads do: where replies take
    longer than the spin (a distant server), spinning stops costing anything that counts.

    A connection inherited by a forked child is never used there: the child opens its own.
    """

    def __init__(
        self, url: str, *, timeout: float = 30.0, connect_timeout: float = 5.0, spin: float = 0.0
    ) -> None:
        self.address = Address.parse(url)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.spin = spin if spin > 0 and can_spin() else 0.0
        self._sock: socket.socket | None = None
        self._reader = hiredis.Reader()
        self._pid = 0
        self._sleeps = 0  # reads left that sleep at once, after a spin found nothing
        self._backoff = 1  # how many there will be after the next such spin

    def pipeline(self, commands: Sequence[bytes | Sequence[Any]]) -> list[Any]:
        """Send commands (encoded already, or not) in one write; their replies, error
        replies as exception objects."""
        data = b"".join(c if isinstance(c, bytes) else encode_command(c) for c in commands)
        sock = self._sock if self._sock is not None and self._pid == os.getpid() else None
        if sock is not None:
            try:
                return self._exchange(sock, data, len(commands))
            except ConnectionError:  # closed while idle, as in MultiplexedConnection._call
                pass
        return self._exchange(self._open(), data, len(commands))

    def _exchange(self, sock: socket.socket, data: bytes, count: int) -> list[Any]:
        try:
            sock.sendall(data)
            replies = [self._read(sock) for _ in range(count)]
        except (builtins.TimeoutError, BlockingIOError) as exc:  # the socket's timeout
            self.close()
            raise TimeoutError(f"Redis did not answer in {self.timeout:g}s") from exc
        except OSError as exc:
            self.close()
            raise ConnectionError(f"connection to Redis lost ({exc})") from exc
        return [_error(str(r)) if isinstance(r, hiredis.ReplyError) else r for r in replies]

    def _read(self, sock: socket.socket) -> Any:
        reader = self._reader
        while (reply := reader.gets()) is False:
            data = None
            if self._sleeps:
                self._sleeps -= 1
            elif self.spin:
                data = self._spin(sock)
            if data is None:
                data = sock.recv(65536)
            if not data:
                raise OSError("closed by the server")
            reader.feed(data)
        return reply

    def _spin(self, sock: socket.socket) -> bytes | None:
        """What the socket receives within the spin; None if nothing came."""
        deadline = time.perf_counter() + self.spin
        while True:
            try:
                data = sock.recv(65536, _DONTWAIT)
            except BlockingIOError:
                if time.perf_counter() >= deadline:
                    self._sleeps = self._backoff
                    self._backoff = min(self._backoff * 2, SPIN_BACKOFF_MAX)
                    return None
            else:
                self._backoff = 1
                return data

    def _open(self) -> socket.socket:
        address = self.address
        self._sock = None
        try:
            sock = socket.create_connection(
                (address.host, address.port), timeout=self.connect_timeout
            )
        except OSError as exc:
            raise ConnectionError(f"cannot connect to Redis at {address} ({exc})") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _set_blocking_timeout(sock, self.timeout)
        self._sock, self._pid, self._reader = sock, os.getpid(), hiredis.Reader()
        handshake = address.handshake()
        if handshake:
            encoded = b"".join(encode_command(c) for c in handshake)
            for reply in self._exchange(sock, encoded, len(handshake)):
                if isinstance(reply, Exception):
                    self.close()
                    raise reply
        return sock

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None and self._pid == os.getpid():
            sock.close()
