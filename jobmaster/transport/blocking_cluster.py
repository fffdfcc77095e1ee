"""The blocking producer's connections on Redis Cluster: per calling thread, one blocking
connection per master, commands sent to the master of their key's slot."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ConnectionError, ResponseError

from jobmaster.transport.address import ClusterSeeds
from jobmaster.transport.blocking import BlockingConnection
from jobmaster.transport.cluster import (
    MAX_REDIRECTS,
    RETRY_PAUSES,
    Node,
    is_cluster_refusal,
    redirection,
    slot_of,
    slot_table,
)


class ClusterThreadConnections:
    """Blocking connections to a cluster's masters, per calling thread, and the slot map
    they share (read again after a redirection or a lost connection)."""

    def __init__(self, url: str, *, timeout: float, spin: float = 0.0) -> None:
        self.seeds = ClusterSeeds.parse(url)
        self.timeout = timeout
        self.spin = spin
        self._local = threading.local()
        self._all: list[BlockingConnection] = []
        self._lock = threading.Lock()
        self._slots: list[Node] | None = None
        self._slot_cache: dict[str | bytes, int] = {}

    def _node(self, node: Node) -> BlockingConnection:
        nodes: dict[Node, BlockingConnection] | None = getattr(self._local, "nodes", None)
        if nodes is None:
            nodes = self._local.nodes = {}
        conn = nodes.get(node)
        if conn is None:
            conn = nodes[node] = BlockingConnection(
                self.seeds.address(*node), timeout=self.timeout, spin=self.spin
            )
            with self._lock:
                self._all.append(conn)
        return conn

    def _refresh(self) -> list[Node]:
        errors = []
        known = {n for c in self._all for n in [(c.address.host, c.address.port)]}
        for node in dict.fromkeys([*known, *self.seeds.nodes]):
            probe = BlockingConnection(self.seeds.address(*node), timeout=self.timeout)
            try:
                (reply,) = probe.pipeline([["CLUSTER", "SLOTS"]])
            except (ConnectionError, OSError) as exc:
                errors.append(f"{node[0]}:{node[1]}: {exc}")
                continue
            finally:
                probe.close()
            if isinstance(reply, Exception):
                errors.append(f"{node[0]}:{node[1]}: {reply}")
                continue
            self._slots = slots = slot_table(reply)
            return slots
        raise ConnectionError("no node of the Redis Cluster answered: " + "; ".join(errors))

    def pipeline(self, key: str, commands: Sequence[bytes | Sequence[Any]]) -> list[Any]:
        """Send commands whose keys share ``key``'s slot to its master in one write, and
        follow redirections; their replies, error replies as exception objects."""
        replies: list[Any] = [None] * len(commands)
        todo = list(range(len(commands)))
        for attempt in range(MAX_REDIRECTS):
            slots = self._slots or self._refresh()
            conn = self._node(slots[slot_of(key, self._slot_cache)])
            try:
                answers = conn.pipeline([commands[i] for i in todo])
            except ConnectionError:
                self._slots = None  # a master may have died: read the map again next time
                raise
            again = []
            for i, answer in zip(todo, answers, strict=True):
                if is_cluster_refusal(answer) and attempt < MAX_REDIRECTS - 1:
                    moved = redirection(answer)
                    if moved is not None and moved[0] == "ASK":
                        answer = self._node(moved[1]).pipeline([["ASKING"], commands[i]])[1]
                        if not is_cluster_refusal(answer):
                            replies[i] = answer
                            continue
                    again.append(i)
                else:
                    replies[i] = answer
            if not again:
                return replies
            todo = again
            time.sleep(RETRY_PAUSES[min(attempt, len(RETRY_PAUSES) - 1)])
            self._refresh()
        raise ResponseError("too many redirections")  # pragma: no cover

    def close(self) -> None:
        with self._lock:
            connections, self._all = self._all, []
        for conn in connections:
            conn.close()
        self._local = threading.local()
