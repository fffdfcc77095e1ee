"""Enqueueing from synchronous code without an event loop (``enqueue_sync``).

The same script as :meth:`JobCommands.enqueue <jobmaster.store.jobs.JobCommands.enqueue>`,
sent over a blocking connection of the calling thread (:mod:`jobmaster.transport.blocking`):
no hop to a background event loop, one write and one read per call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError

from jobmaster.keys import Keys
from jobmaster.scripts import source
from jobmaster.store.connection import ENQUEUE_CHUNK, QueueKeyLists
from jobmaster.store.enqueueing import created_flags, enqueue_command
from jobmaster.store.replication import Replication
from jobmaster.store.types import NewJob
from jobmaster.transport.address import is_cluster
from jobmaster.transport.blocking import ThreadConnections
from jobmaster.transport.blocking_cluster import ClusterThreadConnections


class BlockingProducer:
    """Creates jobs from any thread, each thread on a connection of its own."""

    def __init__(
        self,
        url: str,
        namespace: str,
        *,
        events_maxlen: int,
        timeout: float,
        spin: float = 0.0,
        replication: Replication | None = None,
    ) -> None:
        self.url = url
        self.replication = replication
        self.keys = Keys(namespace)
        self.events_maxlen = events_maxlen
        self._script = source("enqueue")
        self._sha = hashlib.sha1(self._script.encode()).hexdigest()
        self._lists: dict[str, QueueKeyLists] = {}
        self._known_queues: set[str] = set()
        self._connections = ThreadConnections(url, timeout=timeout, spin=spin)
        self._cluster = (
            ClusterThreadConnections(url, timeout=timeout, spin=spin) if is_cluster(url) else None
        )
        self._heads: dict[tuple[str, ...], bytes] = {}

    def enqueue(self, queue: str, jobs: Sequence[NewJob]) -> list[bool]:
        """Create jobs; for each, False when its id already existed (nothing written)."""
        if not jobs:
            return []
        lists = self._lists.get(queue)
        if lists is None:
            lists = self._lists[queue] = QueueKeyLists(self.keys.queue(queue))
        commands: list[bytes | list[Any]] = []
        sizes: list[int] = []  # jobs per command
        if queue not in self._known_queues:
            commands.append(["SADD", self.keys.queues, queue])
            sizes.append(0)
        for first in range(0, len(jobs), ENQUEUE_CHUNK):
            batch = jobs[first : first + ENQUEUE_CHUNK]
            commands.append(
                enqueue_command(self._heads, self._sha, lists, batch, self.events_maxlen)
            )
            sizes.append(len(batch))
        if self._cluster is not None:
            return self._enqueue_on_cluster(queue, lists, commands, sizes)
        conn = self._connections.get()
        replies = conn.pipeline(commands)
        if any(isinstance(r, NoScriptError) for r in replies):  # nothing ran for those
            conn.pipeline([["SCRIPT", "LOAD", self._script]])
            again = [
                c for c, r in zip(commands, replies, strict=True) if isinstance(r, NoScriptError)
            ]
            retried = iter(conn.pipeline(again))
            replies = [next(retried) if isinstance(r, NoScriptError) else r for r in replies]
        created = created_flags(sizes, replies)
        self._known_queues.add(queue)
        if self.replication is not None:  # on the thread's connection, after the writes
            acked = conn.pipeline([self.replication.command()])[0]
            self.replication.check(acked, "enqueue", created)
        return created

    def _enqueue_on_cluster(
        self,
        queue: str,
        lists: QueueKeyLists,
        commands: list[bytes | list[Any]],
        sizes: list[int],
    ) -> list[bool]:
        """The same commands, each to the master of its slot (the queue's, and the list of
        queues'), the scripts loaded on the queue's master if it lacks them."""
        assert self._cluster is not None
        replies: list[Any] = []
        if sizes[0] == 0:  # SADD of the queue's name: another slot
            replies += self._cluster.pipeline(self.keys.queues, commands[:1])
        scripts = commands[len(replies) :]
        key = lists.enqueue[0]
        answers = self._cluster.pipeline(key, scripts)
        if any(isinstance(r, NoScriptError) for r in answers):  # nothing ran for those
            self._cluster.pipeline(key, [["SCRIPT", "LOAD", self._script]])
            again = [
                c for c, r in zip(scripts, answers, strict=True) if isinstance(r, NoScriptError)
            ]
            retried = iter(self._cluster.pipeline(key, again))
            answers = [next(retried) if isinstance(r, NoScriptError) else r for r in answers]
        created = created_flags(sizes, replies + answers)
        self._known_queues.add(queue)
        if self.replication is not None:  # on the thread's connection to the queue's master
            acked = self._cluster.pipeline(key, [self.replication.command()])[0]
            self.replication.check(acked, "enqueue", created)
        return created

    def close(self) -> None:
        """Close every thread's connection (call when no thread enqueues any more)."""
        self._connections.close()
        if self._cluster is not None:
            self._cluster.close()
