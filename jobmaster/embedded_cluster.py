"""A private Redis Cluster on free loopback ports, for tests and benchmarks.

Three masters by default (and optionally one replica each), each a ``redis-server
--cluster-enabled yes`` in a temporary directory, joined by ``redis-cli --cluster create``.
Nothing is written outside the temporary directory, and the servers go away with the object.
It runs the server binary that :class:`~jobmaster.embedded.EmbeddedRedis` would (redis-server,
else valkey-server, else the packaged Valkey of ``jobmaster[embedded]``, which brings its
``valkey-cli``) and the command line client next to it (``valkey-cli`` for Valkey).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import hiredis

from jobmaster.embedded import EmbeddedRedisError, free_port
from jobmaster.server_binaries import ServerNotFound, find_server, server_kind
from jobmaster.transport.resp import encode_command


class ClusterNode:
    """One ``redis-server`` of the cluster."""

    def __init__(self, binary: str, directory: Path, port: int) -> None:
        self.binary = binary
        self.port = port
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(self.directory / "nodes.conf"),
            "--cluster-node-timeout", "1000",
            "--cluster-replica-validity-factor", "0",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

    def command(self, *args: str | int, timeout: float = 2.0) -> Any:
        """Send one command and return its reply (an error reply as its message)."""
        reader = hiredis.Reader()
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as conn:
            conn.sendall(encode_command(list(args)))
            while (reply := reader.gets()) is False:
                chunk = conn.recv(65536)
                if not chunk:
                    raise OSError("closed by the server")
                reader.feed(chunk)
        return str(reply).encode() if isinstance(reply, hiredis.ReplyError) else reply

    def answers(self) -> bool:
        try:
            return bool(self.command("PING", timeout=0.5) == b"PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the server (a crash)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None


class EmbeddedCluster:
    """Start and stop a Redis Cluster of one's own.

    Args:
        masters: how many masters (at least 3: Redis Cluster's minimum).
        replicas: replicas per master (for failover tests).
        binary: ``redis``, ``valkey`` or the path of a server binary; default: as
            :class:`~jobmaster.embedded.EmbeddedRedis` (``$JOBMASTER_EMBEDDED_SERVER``, else
            redis-server, valkey-server, the packaged Valkey). Its command line client
            (redis-cli or valkey-cli) is looked up next to it, then on PATH.
    """

    def __init__(self, *, masters: int = 3, replicas: int = 0, binary: str | None = None) -> None:
        if masters < 3:
            raise ValueError("a Redis Cluster needs at least 3 masters")
        try:
            server = find_server(binary)
        except ServerNotFound as exc:
            raise EmbeddedRedisError(str(exc)) from None
        client = "valkey-cli" if server_kind(server) == "valkey" else "redis-cli"
        cli = shutil.which(client, path=str(Path(server).parent)) or shutil.which(client)
        if cli is None:
            raise EmbeddedRedisError(
                f"{client} was not found next to {server} nor on PATH; it creates the cluster"
            )
        self.cli = cli
        self.masters = masters
        self.replicas = replicas
        self._tmp = tempfile.TemporaryDirectory(prefix="jobmaster-cluster-")
        self.directory = Path(self._tmp.name)
        self.nodes = [
            ClusterNode(server, self.directory / str(port), port)
            for port in _free_ports(masters * (1 + replicas))
        ]

    @property
    def url(self) -> str:
        """``redis+cluster://`` with every node as a seed."""
        return "redis+cluster://" + ",".join(n.address for n in self.nodes)

    def start(self, timeout: float = 30.0) -> None:
        for node in self.nodes:
            node.start()
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            while not node.answers():
                if node.process is not None and node.process.poll() is not None:
                    log = (node.directory / "redis.log").read_text(errors="replace")[-2000:]
                    raise EmbeddedRedisError(f"{node.binary} exited at start:\n{log}")
                if time.monotonic() > deadline:
                    raise EmbeddedRedisError(f"{node.binary} did not answer on {node.address}")
                time.sleep(0.01)
        create = [self.cli, "--cluster", "create", *(n.address for n in self.nodes)]
        create += ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
        created = subprocess.run(
            create,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if created.returncode != 0:
            raise EmbeddedRedisError(f"{self.cli} --cluster create failed:\n{created.stdout}")
        self.wait_ok(deadline - time.monotonic())

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Wait until every live node says ``cluster_state:ok`` and agrees on the masters."""
        deadline = time.monotonic() + timeout
        while True:
            live = [n for n in self.nodes if n.process is not None]
            try:
                infos = [n.command("CLUSTER", "INFO") for n in live]
            except OSError:
                infos = []
            if infos and all(b"cluster_state:ok" in i for i in infos):
                return
            if time.monotonic() > deadline:
                raise EmbeddedRedisError("the cluster did not reach cluster_state:ok")
            time.sleep(0.05)

    def run_cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """``redis-cli`` (or ``valkey-cli``) with these arguments (``--cluster reshard ...``
        and the like)."""
        return subprocess.run(
            [self.cli, *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    def node_of_port(self, port: int) -> ClusterNode:
        return next(n for n in self.nodes if n.port == port)

    def master_of(self, slot: int) -> ClusterNode:
        """The master that serves a slot now (as the first live node sees it)."""
        live = next(n for n in self.nodes if n.process is not None)
        for start, end, master, *_ in live.command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return self.node_of_port(int(master[1]))
        raise EmbeddedRedisError(f"no master serves slot {slot}")

    def masters_now(self) -> list[ClusterNode]:
        live = next(n for n in self.nodes if n.process is not None)
        ports = {int(m[1]) for _, _, m, *_ in live.command("CLUSTER", "SLOTS")}
        return [n for n in self.nodes if n.port in ports]

    def move_slot(self, slot: int, target: ClusterNode, batch: int = 10, pause: float = 0.0) -> int:
        """Move one slot to another master, keys ``batch`` at a time with a ``pause``
        between batches (as ``redis-cli --cluster reshard`` does it: IMPORTING, MIGRATING,
        MIGRATE, then the new owner told to every master); how many keys moved."""
        source = self.master_of(slot)
        if source is target:
            return 0
        target_id = target.command("CLUSTER", "MYID").decode()
        source_id = source.command("CLUSTER", "MYID").decode()
        _ok(target.command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id))
        _ok(source.command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id))
        moved = 0
        while True:
            keys = source.command("CLUSTER", "GETKEYSINSLOT", slot, batch)
            if not keys:
                break
            _ok(source.command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys))
            moved += len(keys)
            if pause:
                time.sleep(pause)
        for node in self.masters_now():
            _ok(node.command("CLUSTER", "SETSLOT", slot, "NODE", target_id))
        return moved

    def flushall(self) -> None:
        """Empty every master (replicas follow)."""
        for node in self.nodes:
            if node.process is not None and b"role:master" in node.command("INFO", "replication"):
                node.command("FLUSHALL")

    def close(self) -> None:
        for node in self.nodes:
            node.stop()
        self._tmp.cleanup()

    def __enter__(self) -> EmbeddedCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _ok(reply: Any) -> None:
    if reply not in (b"OK", b"NOKEY"):
        raise EmbeddedRedisError(f"the cluster refused: {reply!r}")


def _free_ports(count: int) -> list[int]:
    """Free ports whose cluster bus ports (port + 10000) are free too."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port + 10000 < 65536 and port not in ports and _free(port + 10000):
            ports.append(port)
    return ports


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
