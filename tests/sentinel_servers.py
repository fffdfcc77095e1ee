"""A local Sentinel deployment for tests: a master, its replicas and three sentinels, each a
real server process on a free loopback port, with fast failure detection."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from jobmaster.embedded import EmbeddedRedis, free_port

SERVICE = "jobs"
DOWN_AFTER_MS = 1000


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} within {timeout}s")


class Sentinel:
    """One sentinel process (``<server> sentinel.conf --sentinel``)."""

    def __init__(self, binary: str, master_port: int, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        conf = directory / f"sentinel-{self.port}.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {directory}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {master_port} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SERVICE} 5000\n"
            f"sentinel parallel-syncs {SERVICE} 2\n"
        )
        log = directory / f"sentinel-{self.port}.log"
        self.process = subprocess.Popen(
            [binary, str(conf), "--sentinel", "--logfile", str(log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.client = redis.Redis(port=self.port, socket_timeout=2, decode_responses=True)

    def master(self) -> dict[str, Any]:
        reply: Any = self.client.execute_command("SENTINEL", "MASTER", SERVICE)
        if isinstance(reply, dict):
            return reply
        return dict(zip(reply[::2], reply[1::2], strict=True))

    def close(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class SentinelDeployment:
    """A master with ``replicas`` replicas, watched by three sentinels (quorum 2)."""

    def __init__(self, replicas: int = 2) -> None:
        fast_sync = ["--repl-diskless-sync-delay", "0"]  # a replica syncs at once
        self.master = EmbeddedRedis(options=fast_sync)
        self.master.start()
        self.servers = [self.master]
        for _ in range(replicas):
            of_master = ["--replicaof", "127.0.0.1", str(self.master.port)]
            replica = EmbeddedRedis(options=[*fast_sync, *of_master])
            replica.start()
            self.servers.append(replica)
        master = redis.Redis(port=self.master.port)

        def synced() -> bool:
            info: Any = master.info("replication")
            states = [info.get(f"slave{n}", {}).get("state") for n in range(replicas)]
            return states == ["online"] * replicas

        _wait(synced, 10, "the replicas did not sync")
        master.close()
        self._tmp = tempfile.TemporaryDirectory(prefix="jobmaster-sentinel-")
        self.sentinels = [
            Sentinel(self.master.binary, self.master.port, Path(self._tmp.name)) for _ in range(3)
        ]
        _wait(self._sees_everyone, 20, "the sentinels did not find each other and the replicas")

    def _sees_everyone(self) -> bool:
        replicas = len(self.servers) - 1
        return all(
            int(m["num-other-sentinels"]) == 2 and int(m["num-slaves"]) == replicas
            for m in (s.master() for s in self.sentinels)
        )

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def master_port(self) -> int:
        """The port of the master the sentinels name now."""
        return int(self.sentinels[0].master()["port"])

    def cut_replication(self) -> None:
        """Disconnect the replicas from the master and keep them out (it asks for a
        password they do not have): what the master writes from now on, no replica has."""
        client = redis.Redis(port=self.master_port())
        try:
            client.config_set("requirepass", "replicas-cut-off")  # this connection stays in
            client.execute_command("CLIENT", "KILL", "TYPE", "replica")
        finally:
            client.close()

    def kill_master(self) -> EmbeddedRedis:
        """SIGKILL the master (nothing flushed); returns it."""
        old = next(s for s in self.servers if s.port == self.master_port())
        old.kill()
        return old

    def wait_for_failover(self, old_port: int, timeout: float = 20.0) -> int:
        """Wait until every sentinel names a new master that answers as one; its port."""

        def promoted() -> int | None:
            ports = {int(s.master()["port"]) for s in self.sentinels}
            if len(ports) != 1 or old_port in ports:
                return None
            port = ports.pop()
            client = redis.Redis(port=port, socket_timeout=1)
            try:
                role = client.execute_command("ROLE")[0]
            finally:
                client.close()
            return port if role == b"master" else None

        return int(_wait(promoted, timeout, "no failover"))

    def close(self) -> None:
        for sentinel in self.sentinels:
            sentinel.close()
        for server in self.servers:
            server.close()
        self._tmp.cleanup()
