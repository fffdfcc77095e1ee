"""A job's arguments on the wire: their msgpack, and what is refused before anything is
written.

Refused, with :class:`InvalidArguments` naming the argument:

- integers beyond 64 bits (msgpack holds -2**63 .. 2**64-1) and text that is not Unicode
  (a lone surrogate such as ``"\\ud800"``): they cannot be stored;
- NaN and infinity in a value whose type lets anything through (``Any``, an unannotated
  parameter, ``dict``, ``list[Any]``): JSON has no such numbers, and they used to become
  ``None`` on the way. (A ``float`` parameter refuses them when it is validated, unless
  annotated ``Annotated[float, pydantic.AllowInfNan()]``; see signature.py.)
- arguments whose msgpack is longer than the registry's ``max_payload`` (setting
  ``JOBMASTER_MAX_PAYLOAD``): large data belongs elsewhere, the job carries a reference.

Every check is on the packed bytes, or runs only when they show a problem, so that a
producer's hot path pays a length comparison per job.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from jobmaster.codec import pack, pack_each
from jobmaster.errors import InvalidArguments

if TYPE_CHECKING:
    from jobmaster.signature import HandlerSignature

MAX_PAYLOAD_VARIABLE = "JOBMASTER_MAX_PAYLOAD"

_UNPACKABLE = (OverflowError, ValueError, TypeError)  # UnicodeEncodeError is a ValueError
_NON_FINITE_MARKS = (b"\xcb\x7f", b"\xcb\xff")
"""A msgpack float 64 whose exponent is all ones (NaN or infinity) starts with one of these
(so does a finite float beyond 2**1008, and bytes inside other values may match: a match
only leads to the exact check)."""


def pack_arguments(signature: HandlerSignature, arguments: dict[str, Any], limit: int) -> bytes:
    """The msgpack of one call's dumped arguments (see :meth:`HandlerSignature.dump`).

    Raises:
        InvalidArguments: an argument cannot be stored, holds NaN or infinity where its
            type does not allow them, or the whole is longer than ``limit`` bytes.
    """
    try:
        packed: bytes = pack(arguments)
    except _UNPACKABLE as exc:
        raise _unpackable(signature, arguments, exc) from None
    if len(packed) > limit:
        raise _too_large(signature, len(packed), limit)
    if signature.loose and _may_hold_non_finite(packed):
        _check_finite(signature, arguments)
    return packed


def pack_many_arguments(
    signature: HandlerSignature, calls: Sequence[dict[str, Any]], limit: int
) -> list[bytes]:
    """:func:`pack_arguments` of many calls; the error names the call (``call #n``)."""
    try:
        packed = pack_each(calls)
    except _UNPACKABLE:
        packed = []
        for number, arguments in enumerate(calls):
            try:
                packed.append(pack_arguments(signature, arguments, limit))
            except InvalidArguments as exc:
                raise InvalidArguments(f"call #{number}: {exc}") from None
    if max(map(len, packed), default=0) > limit:
        number, size = next((n, len(p)) for n, p in enumerate(packed) if len(p) > limit)
        raise InvalidArguments(f"call #{number}: {_too_large(signature, size, limit)}")
    if signature.loose:
        for number, (arguments, data) in enumerate(zip(calls, packed, strict=True)):
            if _may_hold_non_finite(data):
                try:
                    _check_finite(signature, arguments)
                except InvalidArguments as exc:
                    raise InvalidArguments(f"call #{number}: {exc}") from None
    return packed


def _unpackable(
    signature: HandlerSignature, arguments: dict[str, Any], exc: Exception
) -> InvalidArguments:
    """The error for arguments msgpack refused, naming the first one it refuses."""
    name = "?"
    for parameter, value in arguments.items():
        try:
            pack(value)
        except _UNPACKABLE as refused:
            name, exc = parameter, refused
            break
    if isinstance(exc, OverflowError):
        why = "an integer beyond 64 bits (the range is -2**63 .. 2**64-1)"
    elif isinstance(exc, UnicodeEncodeError):
        bad = exc.object[exc.start : exc.end]
        why = f"text that is not valid Unicode ({exc.reason}: {bad!r})"
    else:
        why = f"a value msgpack cannot store ({exc})"
    return InvalidArguments(
        f"{signature.job_name}(): argument {name!r} cannot be stored: it holds {why}"
    )


def _too_large(signature: HandlerSignature, size: int, limit: int) -> InvalidArguments:
    return InvalidArguments(
        f"{signature.job_name}(): the arguments take {size:,} bytes, more than the limit of "
        f"{limit:,} ({MAX_PAYLOAD_VARIABLE}, or Registry(max_payload=)); pass a reference to "
        f"large data (a path, a URL, an object-store key) rather than the data itself"
    )


def _may_hold_non_finite(packed: bytes) -> bool:
    return _NON_FINITE_MARKS[0] in packed or _NON_FINITE_MARKS[1] in packed


def _check_finite(signature: HandlerSignature, arguments: dict[str, Any]) -> None:
    for name in signature.loose:
        if name in arguments and _holds_non_finite(arguments[name]):
            raise InvalidArguments(
                f"{signature.job_name}(): argument {name!r} holds NaN or infinity, which JSON "
                f"cannot represent; they are accepted only by a float type that allows them, "
                f"e.g. Annotated[float, pydantic.AllowInfNan()]"
            )


def _holds_non_finite(value: Any) -> bool:
    """Whether a dumped (JSON-like) value holds a float that is NaN or infinite."""
    if type(value) is float:
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(map(_holds_non_finite, value.values()))
    if isinstance(value, list):
        return any(map(_holds_non_finite, value))
    return False
