"""The one encoding of the records the Lua scripts edit: status, attempt (its opening and its
end) and schedule state.

The same codec is written in Lua (the record codec of ``jobmaster/lua/common.lua``); the
fields are described in ``keys.py``. A record is a stream of msgpack values, one per field
in a fixed order, nil for an absent one: numbers as integers, texts as str, flags as 1. The
fields the scripts' hot paths use come first (``short`` of them); the others are left out
together when they are all absent. Both codecs write the same bytes for the same fields.

JSON records (first byte ``{``) were written by earlier versions: they are read, never
written.

A decoded record is a dict keyed by the field names of ``keys.py``, without the fields that
are absent: numbers as ``int``, flags as ``1``, texts as ``str`` (bytes that are not UTF-8
replaced).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

import msgpack

from jobmaster.codec import DecodeError, load_json

STATES = frozenset({"scheduled", "queued", "active", "succeeded", "failed", "cancelled", "blocked"})

_LIMIT = 10**15
"""Numbers in records are below this (ms timestamps, counts), as the Lua codec checks."""


class Kind(Enum):
    """What a field holds."""

    STATE = "state"
    """One of STATES, always present."""
    COUNT = "count"
    """An integer >= 0, always present."""
    BAND = "band"
    """A priority band 0..9, always present."""
    NUMBER = "number"
    """An integer >= 0, or absent."""
    TEXT = "text"
    """Any text, or absent."""
    WORD = "word"
    """Any text, always present."""
    FLAG = "flag"
    """1, or absent."""


_REQUIRED = (Kind.STATE, Kind.COUNT, Kind.BAND, Kind.WORD)


class RecordFormat:
    """One kind of record: its fields (name and kind, in order), the first ``short`` of which
    are always written."""

    def __init__(self, name: str, fields: tuple[tuple[str, Kind], ...], short: int):
        self.name, self.fields, self.short = name, fields, short
        self.names = frozenset(name for name, _ in fields)

    def decode(self, raw: bytes) -> dict[str, Any]:
        """The fields of a record (see the module's docstring).

        Raises:
            DecodeError: a record that is neither of this format nor JSON.
        """
        values = self._values(raw)
        if values is None:
            if raw[:1] == b"{":
                return self._legacy(raw)
            raise DecodeError(f"undecodable {self.name} record ({len(raw)} bytes)")
        return {
            name: value
            for (name, _), value in zip(self.fields, values, strict=False)
            if value is not None
        }

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """A record of these fields (absent or None ones left out), as the scripts write it.

        Raises:
            ValueError: a field that its kind cannot hold, or a required one missing.
        """
        unknown = set(record) - self.names
        if unknown:
            raise ValueError(f"a {self.name} record has no fields {sorted(unknown)}")
        values = [record.get(name) for name, _ in self.fields]
        for (name, kind), value in zip(self.fields, values, strict=True):
            if (value is None and kind in _REQUIRED) or not _holds(kind, value):
                raise ValueError(f"{self.name} field {name!r} cannot hold {value!r}")
        if all(v is None for v in values[self.short :]):
            values = values[: self.short]
        return b"".join(msgpack.packb(v, use_bin_type=True) for v in values)

    def _values(self, raw: bytes) -> list[Any] | None:
        """The values of a record of this format, or None when it is not one."""
        unpacker = msgpack.Unpacker(raw=False, unicode_errors="replace", strict_map_key=False)
        unpacker.feed(raw)
        try:
            values = list(unpacker)
        except (ValueError, msgpack.UnpackException):
            return None
        if not 0 < len(values) <= len(self.fields) or unpacker.tell() != len(raw):
            return None
        for (_, kind), value in zip(self.fields, values, strict=False):
            if not _holds(kind, value):
                return None
        for _, kind in self.fields[len(values) :]:
            if kind in _REQUIRED:
                return None
        return values

    def _legacy(self, raw: bytes) -> dict[str, Any]:
        record = load_json(raw)
        if not isinstance(record, dict):
            raise DecodeError(f"a {self.name} record must be an object")
        return record


def _holds(kind: Kind, value: Any) -> bool:
    """Whether a field of this kind may hold the value (None: absent)."""
    if value is None:
        return kind not in _REQUIRED
    if kind in (Kind.TEXT, Kind.WORD):
        return isinstance(value, str)
    if kind is Kind.STATE:
        return value in STATES
    if not isinstance(value, int) or isinstance(value, bool):
        return False
    if kind is Kind.FLAG:
        return value == 1
    if kind is Kind.BAND:
        return 0 <= value <= 9
    return 0 <= value < _LIMIT


STATUS = RecordFormat(
    "status",
    (
        ("s", Kind.STATE),
        ("a", Kind.COUNT),
        ("b", Kind.BAND),
        ("e", Kind.TEXT),
        ("t", Kind.TEXT),
        ("f", Kind.NUMBER),
        ("d", Kind.NUMBER),
        ("x", Kind.TEXT),
        ("m", Kind.TEXT),
        ("l", Kind.NUMBER),
        ("u", Kind.NUMBER),
        ("k", Kind.FLAG),
        ("c", Kind.FLAG),
        ("raw", Kind.TEXT),
    ),
    short=6,
)
"""A job's status (``status`` hash)."""

ATTEMPT = RecordFormat(
    "attempt",
    (
        ("n", Kind.COUNT),
        ("w", Kind.TEXT),
        ("h", Kind.TEXT),
        ("p", Kind.NUMBER),
        ("s", Kind.NUMBER),
    ),
    short=5,
)
"""The opening record of an attempt (``attempts`` hash, field ``<job id>:<n>``), written when
it starts. A JSON record of an earlier version may hold the fields of its end too."""

ATTEMPT_END = RecordFormat(
    "attempt end",
    (
        ("f", Kind.COUNT),
        ("o", Kind.WORD),
        ("x", Kind.TEXT),
        ("m", Kind.TEXT),
        ("tb", Kind.TEXT),
    ),
    short=2,
)
"""The end record of an attempt (``attempts`` hash, field ``<job id>:<n>:end``), written when
it ends without reading the opening one."""

SCHEDULE_STATE = RecordFormat(
    "schedule state",
    (
        ("r", Kind.COUNT),
        ("d", Kind.NUMBER),
        ("p", Kind.FLAG),
        ("l", Kind.NUMBER),
        ("j", Kind.TEXT),
    ),
    short=5,
)
"""The part of a schedule the scripts edit (``schedule_state`` hash)."""
