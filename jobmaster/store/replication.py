"""Acknowledged writes (``min_replicas_acked``): a ``WAIT`` after each enqueue and each
record of attempt ends, on the connection that wrote them.

Redis replicates asynchronously: a write it answered may not have reached any replica when
its master dies, and a failover then loses it. ``WAIT n timeout`` returns once ``n``
replicas have every write of its connection so far (or the timeout passed); the Sentinel
elects the replica that has the most, so a write that ``n >= 1`` replicas acknowledged
survives the failover. It costs a round trip to the replicas per call, and blocks the
connection (the others of its event loop wait) meanwhile.

On Redis Cluster the ``WAIT`` goes to the master that took the writes (their queue's slot),
on the connection that wrote them: over the multiplexed connections, that master's; over
redis-py's cluster client, one pipeline to that master (:func:`scripts_then_wait`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio.cluster import RedisCluster

from jobmaster.errors import NotReplicated
from jobmaster.scripts import Script, source


@dataclass(frozen=True)
class Replication:
    """How many replicas must acknowledge a write, and for how long to wait for them."""

    replicas: int
    timeout_ms: int

    def command(self) -> list[Any]:
        """The ``WAIT`` to send after the writes, on their connection."""
        return ["WAIT", self.replicas, self.timeout_ms]

    def check(self, acked: Any, what: str, created: Sequence[bool] = ()) -> None:
        """Raise :class:`NotReplicated` when fewer replicas acknowledged than asked (or
        the WAIT's error, if Redis refused it)."""
        if isinstance(acked, BaseException):
            raise acked
        if int(acked) < self.replicas:
            raise NotReplicated(
                f"{what}: written, but {int(acked)} of the {self.replicas} replicas asked for "
                f"(min_replicas_acked) acknowledged it within {self.timeout_ms} ms; a "
                f"failover now could lose it",
                int(acked),
                created,
            )


async def scripts_then_wait(
    redis: RedisCluster,
    script: Script,
    calls: Sequence[tuple[Sequence[Any], Sequence[Any]]],
    replication: Replication,
) -> tuple[list[Any], Any]:
    """Calls of one script (``(keys, args)`` each, all keys in one slot) and the ``WAIT``
    after them, in one pipeline to the master of that slot: one connection, so that the
    ``WAIT`` covers them (the script is loaded there first, in case that master lacks it).
    Their replies (errors as exception objects), and the ``WAIT``'s."""
    await redis.initialize()  # the slot map (only the first call reads it)
    node = redis.get_node_from_key(calls[0][0][0])
    pipe = redis.pipeline()
    pipe.execute_command("SCRIPT", "LOAD", source(script.name), target_nodes=node)
    for keys, args in calls:
        pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args, target_nodes=node)
    pipe.execute_command(*replication.command(), target_nodes=node)
    replies = await pipe.execute(raise_on_error=False)
    return replies[1:-1], replies[-1]
