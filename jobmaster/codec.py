"""msgpack on the wire: payloads, results and records. Nothing is ever pickled."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any

import msgpack

_packer_options: dict[str, Any] = {"use_bin_type": True, "datetime": False}
_local = threading.local()


class DecodeError(ValueError):
    """Bytes read from Redis were not the msgpack jobmaster wrote."""


def _packer() -> Any:
    """This thread's packer. ``packb`` builds a packer for every value, which makes packing
    a small value six times as slow. A packer resets itself after each value, a failed one
    included, and one per thread keeps two threads out of one buffer."""
    try:
        return _local.packer
    except AttributeError:
        _local.packer = msgpack.Packer(**_packer_options)
        return _local.packer


def pack(value: Any) -> bytes:
    """Encode a JSON-like value (what pydantic's ``mode="json"`` produces) as msgpack."""
    return _packer().pack(value)  # type: ignore[no-any-return]


def pack_each(values: Iterable[Any]) -> list[bytes]:
    """:func:`pack` of each value (a batch's arguments)."""
    return list(map(_packer().pack, values))


def pack_loose(value: Any) -> bytes:
    """Encode a value for display only (log fields): unknown types become their repr."""
    return msgpack.packb(value, use_bin_type=True, default=repr)  # type: ignore[no-any-return]


def unpack(data: bytes) -> Any:
    """Decode one msgpack value, raising :class:`DecodeError` with the reason on bad input."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise DecodeError(f"undecodable msgpack ({len(data)} bytes): {exc}") from exc


def unpack_stream(data: bytes) -> list[Any]:
    """Decode concatenated msgpack values (the log lines of an attempt)."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(data)
    try:
        return list(unpacker)
    except (ValueError, msgpack.UnpackException) as exc:
        raise DecodeError(f"undecodable msgpack stream: {exc}") from exc


def load_json(data: bytes) -> Any:
    """Decode a record the Lua scripts wrote (JSON; stray non-UTF-8 bytes are replaced)."""
    try:
        return json.loads(data.decode("utf-8", errors="replace"))
    except ValueError as exc:
        raise DecodeError(f"undecodable JSON record ({len(data)} bytes): {exc}") from exc


def load_record(data: bytes) -> Any:
    """A job record: msgpack from producers, JSON when a script wrote it (see keys.py)."""
    return load_json(data) if data[:1] == b"{" else unpack(data)
