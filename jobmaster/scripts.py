"""Loading of the Lua scripts in ``jobmaster/lua``, each prefixed by ``common.lua`` (and
``integrity.lua`` for those that read many statuses at once, ``limits.lua`` for those that
take part in flow control).

Scripts are called by SHA (EVALSHA) and loaded again if the server lost them; outside
pipelines they go through the store's multiplexed connection when it has one. Each part of
the store makes the scripts it calls (:meth:`jobmaster.store.connection.StoreConnection.script`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib.resources import files
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from jobmaster.transport.clients import FastConnection

CHECKING = frozenset({"claim", "finish", "reclaim", "renew", "requeue", "promote"})
"""The scripts that read the statuses of many jobs in one call: they get ``integrity.lua``
(what to do with a status that cannot be read) after ``common.lua``."""
LIMITING = frozenset(
    {
        "claim",
        "finish",
        "reclaim",
        "requeue",
        "promote",
        "cancel",
        "enqueue_controlled",
        "fire_schedules",
    }
)
"""The scripts that take part in flow control: they get ``limits.lua`` (after
``integrity.lua``, which they need)."""
PRELUDES = {"record_output": ["log_feed"], "finish": ["webhook_outbox"]}
"""Preludes of one script each, put just before it (its helpers, kept apart from its body)."""


@cache
def source(name: str) -> str:
    """The full text of a script: the shared prelude(s), then the script itself."""
    lua = files("jobmaster") / "lua"
    parts = ["common", "integrity", name] if name in CHECKING else ["common", name]
    if name in LIMITING:
        parts.insert(-1, "limits")
    parts[-1:-1] = PRELUDES.get(name, [])
    return "\n".join((lua / f"{part}.lua").read_text() for part in parts)


class Script:
    """One script, called by its digest (loaded again where Redis lost it)."""

    def __init__(self, redis: Redis, name: str, fast: FastConnection | None) -> None:
        self.name = name
        self._script: AsyncScript = redis.register_script(source(name))
        self._fast = fast
        self.sha: str = self._script.sha

    async def __call__(
        self, keys: Sequence[str], args: Sequence[Any], client: Any = None, *, resend: bool = True
    ) -> Any:
        """Run the script (``resend``: as :meth:`FastConnection.evalsha`'s)."""
        if client is None and self._fast is not None:
            return await self._fast.evalsha(self.sha, source(self.name), keys, args, resend=resend)
        return await self._script(keys=list(keys), args=list(args), client=client)

    async def call_encoded(
        self, keys: Sequence[str], args: Sequence[Any], encoded: tuple[bytes, int]
    ) -> Any:
        """A call whose last arguments are already in the protocol's form (and how many):
        only over the multiplexed connection."""
        if self._fast is None:
            raise RuntimeError(f"{self.name}: encoded arguments need the multiplexed connection")
        return await self._fast.evalsha(self.sha, source(self.name), keys, args, encoded)
