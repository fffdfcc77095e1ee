"""Which Redis commands jobmaster needs, and which of them the connection's user may not run.

A Redis ACL user lacking one command would otherwise fail one operation deep inside a
script, again and again; a worker checks them all at start and names what is missing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from importlib.resources import files
from typing import Any

from jobmaster.store.connection import GROUP, StoreConnection
from jobmaster.store.replies import check_access_reply

CONTAINERS = frozenset({"XGROUP", "XINFO", "SCRIPT", "CLIENT", "OBJECT", "CONFIG"})
"""Commands that are only run with a subcommand (which the ACL may allow one by one)."""

_LUA_CALL = re.compile(
    r"""(?:rcall|redis\.p?call|call_many)\(\s*['"]([A-Za-z]+)['"](?:\s*,\s*['"]([A-Za-z]+)['"])?"""
)

CLIENT_COMMANDS = (
    "EVALSHA", "SCRIPT LOAD", "XREAD", "XREVRANGE", "XGROUP CREATE", "XGROUP DELCONSUMER",
    "XINFO CONSUMERS", "SADD", "SMEMBERS", "SET", "GET", "MGET", "DEL", "HGET", "HMGET",
    "HGETALL", "HEXISTS", "HDEL", "ZADD", "ZREM", "ZRANGE", "ZRANGEBYSCORE", "ZSCORE",
    "ZCARD", "ZCOUNT", "TIME",
)  # fmt: skip
"""What the store sends besides its scripts (through redis-py and the multiplexed path)."""


@cache
def script_commands() -> tuple[str, ...]:
    """The commands the Lua scripts call (with the subcommand of a container command)."""
    found: set[str] = set()
    for script in (files("jobmaster") / "lua").iterdir():
        if not script.name.endswith(".lua") or script.name == "check_access.lua":
            continue
        for command, second in _LUA_CALL.findall(script.read_text()):
            command = command.upper()
            if command in CONTAINERS:
                command = f"{command} {second.upper()}" if second else ""
            if command:
                found.add(command)
    return tuple(sorted(found))


def needed_commands() -> tuple[str, ...]:
    """Every command a worker runs, as ``ACL`` names them (``XGROUP CREATE``)."""
    return tuple(sorted(set(script_commands()) | set(CLIENT_COMMANDS)))


def _example(command: str, key: str) -> list[str]:
    """A call of ``command`` on ``key`` whose ACL check stands for all its calls: every
    word that may be a key is ``key`` (an ACL may allow some key patterns only)."""
    words = command.split()
    if words[0] == "EVALSHA":
        return [*words, "0" * 40, "1", key]
    if words[0] in ("XREAD", "SCRIPT"):
        return [*words, "STREAMS", key, "0"] if words[0] == "XREAD" else [*words, "return 1"]
    if words[0] == "CLIENT":  # no key: its exact form (the check counts the arguments)
        return [*words, "1"] if words[1] == "UNBLOCK" else words
    if words[0] in CONTAINERS:
        return [*words, key, GROUP, "0"]
    return [*words, key, key, key]


class AccessCommands:
    """The check of the connection's permissions."""

    def __init__(self, conn: StoreConnection) -> None:
        self.keys = conn.keys
        self._check_access = conn.script("check_access")

    async def refused_commands(
        self, queue: str, commands: Sequence[str] | None = None
    ) -> list[str] | None:
        """The commands jobmaster needs (or ``commands``) that Redis refuses to this
        connection's user, checked on the keys of ``queue`` (None where Redis cannot tell:
        before 7.0)."""
        key = self.keys.queue(queue).status
        argv: list[Any] = []
        for command in needed_commands() if commands is None else commands:
            words = _example(command, key)
            argv += (command, len(words), *words)
        return check_access_reply(await self._check_access([key], argv))
