"""Loading of the Lua scripts in ``jobmaster/lua``, each prefixed by the definitions it uses
of its preludes: ``common.lua``, ``limits.lua`` for those that take part in flow control, and
helpers of one script each (``PRELUDES``).

Scripts are called by SHA (EVALSHA) and loaded again if the server lost them; outside
pipelines they go through the store's multiplexed connection when it has one. Each part of
the store makes the scripts it calls (:meth:`jobmaster.store.connection.StoreConnection.script`).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from functools import cache, cached_property
from importlib.resources import files
from typing import Any, NamedTuple

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from jobmaster.transport.clients import FastConnection

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
        "relate",
    }
)
"""The scripts that take part in flow control: their preludes include ``limits.lua``."""
RELATING = frozenset({"finish", "cancel", "reclaim", "relate"})
"""The scripts that take part in relations between jobs: their preludes include
``relations.lua`` (after ``limits.lua``)."""
ON_DEMAND = frozenset({"relations"})
"""Prelude functions that run only on demand (``relations()`` makes what relations do, for
a queue that has some): what only they use of the preludes is made inside them."""
PRELUDES = {"record_output": ["log_feed"], "finish": ["webhook_outbox"]}
"""Preludes of one script each, put just before it (its helpers, kept apart from its body)."""

_DEFINITION = re.compile(r"^local (?:function (\w+)|([\w, ]+?) =)", re.MULTILINE)
_COMMENTS = re.compile(r"--\[\[.*?\]\]|--[^\n]*", re.DOTALL)
_NAME = re.compile(r"(?<![\w:])(?<![^.]\.)[A-Za-z_]\w*")
"""A name a text refers to (not a field or a method: those follow one dot or a colon; two
dots are a concatenation)."""


@cache
def source(name: str) -> str:
    """The full text of a script: the definitions of its preludes that it uses (with each
    prelude's header), then the script itself.

    A script runs the whole of its text on every call, and each function defined there is
    a closure made anew (a few hundred instructions of Redis apiece, more for each upvalue),
    so a script carries only what it needs of its preludes.
    """
    preludes = [
        "common",
        *(["limits"] if name in LIMITING else []),
        *(["relations"] if name in RELATING else []),
        *PRELUDES.get(name, []),
    ]
    script = _read(name)
    return "\n".join([*_used([_definitions(part) for part in preludes], script), script])


class _Chunk(NamedTuple):
    """A top-level definition of a prelude: the names it defines, its text (with the
    comment lines above it), and the names that text refers to."""

    names: frozenset[str]
    text: str
    refers_to: frozenset[str]


def _read(name: str) -> str:
    return (files("jobmaster") / "lua" / f"{name}.lua").read_text()


def _refers_to(text: str) -> frozenset[str]:
    return frozenset(_NAME.findall(_COMMENTS.sub("", text)))


@cache
def _definitions(prelude_name: str) -> tuple[_Chunk, ...]:
    """The top-level definitions of a prelude in order. The text before the first one is
    its header (the first chunk, which defines nothing). Read once per process: every
    script that includes the prelude picks from the same chunks."""
    prelude = _read(prelude_name)
    starts = []
    for found in _DEFINITION.finditer(prelude):
        start = found.start()
        while start > 0:  # the comment lines just above belong to the definition
            line = prelude.rfind("\n", 0, start - 1) + 1
            if not prelude.startswith("--", line):
                break
            start = line
        starts.append((start, found))
    header = prelude[: starts[0][0]] if starts else prelude
    chunks = [_Chunk(frozenset(), header, frozenset())]
    for (start, found), (end, _) in zip(starts, [*starts[1:], (len(prelude), None)], strict=True):
        names = found.group(1) or found.group(2)
        text = prelude[start:end].rstrip("\n")
        chunks.append(
            _Chunk(frozenset(n.strip() for n in names.split(",")), text, _refers_to(text))
        )
    return tuple(chunks)


def _used(preludes: list[tuple[_Chunk, ...]], script: str) -> list[str]:
    """The texts of the definitions of ``preludes`` (in order, each a tuple of chunks) that
    ``script`` uses, directly or through others, in order (a definition can only use those
    before it), each prelude's after its header.

    A definition that only functions of ``ON_DEMAND`` use is put at the top of the first such
    function's body: it is made when that function runs, not at every call of the script."""
    flat = [chunk for chunks in preludes for chunk in chunks[1:]]
    top = _needed(flat, _refers_to(script), len(flat))
    inside: dict[int, list[int]] = {}
    placed = set(top)
    for k in sorted(top):
        if flat[k].names & ON_DEMAND:
            inside[k] = sorted(_needed(flat, flat[k].refers_to, k) - placed)
            placed.update(inside[k])
    parts: list[str] = []
    k = 0
    for chunks in preludes:
        parts.append(chunks[0].text.rstrip("\n"))
        for _ in chunks[1:]:
            if k in top:
                parts.append(_put_inside(flat[k].text, [flat[i].text for i in inside.get(k, [])]))
            k += 1
    return parts


def _needed(flat: list[_Chunk], wanted: frozenset[str], end: int) -> set[int]:
    """The indexes of the definitions of ``flat[:end]`` that the names ``wanted`` need,
    directly or through others (not through the bodies of ``ON_DEMAND`` functions)."""
    names = set(wanted)
    found = set()
    for k in reversed(range(end)):
        chunk = flat[k]
        if chunk.names & names:
            found.add(k)
            if not chunk.names & ON_DEMAND:
                names |= chunk.refers_to
    return found


def _put_inside(function: str, definitions: list[str]) -> str:
    """The text of a function definition with ``definitions`` at the top of its body."""
    if not definitions:
        return function
    first = _DEFINITION.search(function)
    assert first is not None  # a chunk starts with its definition (after its comments)
    body = function.index("\n", first.start()) + 1
    nested = "\n".join(textwrap.indent(text, "  ") for text in definitions)
    return function[:body] + nested + "\n" + function[body:]


class Script:
    """One script, called by its digest (loaded again where Redis lost it). Its text is
    built on first use: a process builds only the scripts it calls."""

    def __init__(self, redis: Redis, name: str, fast: FastConnection | None) -> None:
        self.name = name
        self._redis = redis
        self._fast = fast

    @cached_property
    def _script(self) -> AsyncScript:
        return self._redis.register_script(source(self.name))

    @cached_property
    def sha(self) -> str:
        """The script's SHA1 digest, which EVALSHA names it by."""
        return self._script.sha

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
