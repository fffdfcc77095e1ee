"""A blocking connection speaking the protocol, for synchronous producers (one per thread)."""

from __future__ import annotations

import builtins
import os
import socket
import struct
import threading
import time
from collections.abc import Sequence
from typing import Any

import hiredis
from redis.exceptions import ConnectionError, TimeoutError

from jobmaster.transport.address import Address
from jobmaster.transport.resp import encode_command, error_reply
from jobmaster.transport.sentinel import CONNECTION_LOST_REPLIES, locator


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
        self,
        url: str | Address,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        spin: float = 0.0,
    ) -> None:
        # redis://, redis+sentinel://, or the address of a cluster's node
        self._locator = locator(url, connect_timeout)
        self.address = self._locator.address
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
        if any(isinstance(r, hiredis.ReplyError) for r in replies):
            lost = [r for r in replies if str(r).startswith(CONNECTION_LOST_REPLIES)]
            if lost:  # a master made a replica: the next connection asks where it is now
                self.close()
                raise ConnectionError(f"the server is no longer the master ({lost[0]})")
            return [
                error_reply(str(r)) if isinstance(r, hiredis.ReplyError) else r for r in replies
            ]
        return replies

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
        self._sock = None
        try:
            address = self.address = self._locator.locate_sync()
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


class ThreadConnections:
    """One :class:`BlockingConnection` per calling thread, opened on its first use, all
    closed together by :meth:`close`."""

    def __init__(self, url: str, *, timeout: float, spin: float = 0.0) -> None:
        self.url = url
        self.timeout = timeout
        self.spin = spin
        self._local = threading.local()
        self._connections: list[BlockingConnection] = []
        self._lock = threading.Lock()

    def get(self) -> BlockingConnection:
        """The calling thread's connection."""
        conn: BlockingConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = BlockingConnection(
                self.url, timeout=self.timeout, spin=self.spin
            )
            with self._lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        """Close every thread's connection (call when no thread uses them any more)."""
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()
