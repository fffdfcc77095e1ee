"""Acknowledged writes (``min_replicas_acked``): a ``WAIT`` after each enqueue and each
record of attempt ends, on the connection that wrote them.

Redis replicates asynchronously: a write it answered may not have reached any replica when
its master dies, and a failover then loses it. ``WAIT n timeout`` returns once ``n``
replicas have every write of its connection so far (or the timeout passed); the Sentinel
elects the replica that has the most, so a write that ``n >= 1`` replicas acknowledged
survives the failover. It costs a round trip to the replicas per call, and blocks the
connection (the others of its event loop wait) meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jobmaster.errors import NotReplicated


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
