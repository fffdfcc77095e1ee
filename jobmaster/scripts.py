"""Loading of the Lua scripts in ``jobmaster/lua``, each prefixed by ``common.lua``.

Scripts are called by SHA (EVALSHA); redis-py loads one again if the server lost it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib.resources import files
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript


@cache
def source(name: str) -> str:
    """The full text of a script: the shared prelude, then the script itself."""
    lua = files("jobmaster") / "lua"
    return (lua / "common.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


class _Script:
    def __init__(self, redis: Redis, name: str) -> None:
        self.name = name
        self._script: AsyncScript = redis.register_script(source(name))

    async def __call__(self, keys: Sequence[str], args: Sequence[Any], client: Any = None) -> Any:
        return await self._script(keys=list(keys), args=list(args), client=client)


class Scripts:
    """Every atomic operation of jobmaster, ready to call."""

    def __init__(self, redis: Redis) -> None:
        self.enqueue = _Script(redis, "enqueue")
        self.claim = _Script(redis, "claim")
        self.finish = _Script(redis, "finish")
        self.promote = _Script(redis, "promote")
        self.requeue = _Script(redis, "requeue")
        self.reclaim = _Script(redis, "reclaim")
        self.prune = _Script(redis, "prune")
        self.delete = _Script(redis, "delete")
        self.cancel = _Script(redis, "cancel")
        self.reschedule = _Script(redis, "reschedule")
        self.update = _Script(redis, "update")
        self.retry = _Script(redis, "retry")
        self.renew = _Script(redis, "renew")
        self.record_output = _Script(redis, "record_output")
        self.save_schedule = _Script(redis, "save_schedule")
        self.fire_schedules = _Script(redis, "fire_schedules")
        self.scheduler_lease = _Script(redis, "scheduler_lease")
