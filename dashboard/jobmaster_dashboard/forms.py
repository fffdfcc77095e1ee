"""Reading form fields: JSON arguments, priorities, delays, times, tags.

Each parser raises :class:`FieldError` naming the field, so that a form can be shown again
with the message next to it and the user's input kept.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from starlette.datastructures import FormData

T = TypeVar("T")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RELATIVE = re.compile(
    r"^in\s+(\d+(?:\.\d+)?)\s*(s|secs?|seconds?|m|mins?|minutes?|h|hours?|d|days?)?$"
)


class FieldError(ValueError):
    """A form field's value was refused; ``field`` names it, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class FieldErrors:
    """The messages of a form's refused fields, collected while reading them."""

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    def check(self, parse: Callable[[], T]) -> T | None:
        """``parse()``, or None with its message kept when it refuses a field."""
        try:
            return parse()
        except FieldError as exc:
            self.errors.setdefault(exc.field, exc.message)
            return None

    def add(self, field: str, message: str) -> None:
        self.errors.setdefault(field, message)


def text(form: FormData | Mapping[str, Any], name: str) -> str:
    """A text field, stripped ("" when absent or not text)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def json_object(raw: str, field: str) -> dict[str, Any]:
    """A JSON object of keyword arguments (empty input: no arguments)."""
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise FieldError(field, f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise FieldError(field, 'give a JSON object of keyword arguments, like {"a": 1}')
    return value


def priority(raw: str, field: str = "priority") -> int | None:
    """An integer from 0 to 9, or None when left empty."""
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise FieldError(field, f"give an integer from 0 to 9, not {raw!r}") from None
    if not 0 <= value <= 9:
        raise FieldError(field, f"give an integer from 0 to 9, not {value}")
    return value


def seconds(raw: str, field: str, *, minimum: float = 0.0) -> float | None:
    """A number of seconds (>= ``minimum``), or None when left empty."""
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise FieldError(field, f"give a number of seconds, not {raw!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise FieldError(field, f"give a number of seconds >= {minimum:g}, not {raw}")
    return value


def when(raw: str, field: str, now: datetime | None = None) -> datetime | None:
    """A time: ``now``, ``in N seconds`` (or minutes, hours, days), or an ISO datetime
    (UTC when it has no offset). None when left empty."""
    if not raw:
        return None
    now = now or datetime.now(UTC)
    lowered = raw.lower()
    if lowered == "now":
        return now
    relative = _RELATIVE.match(lowered)
    if relative:
        unit = (relative.group(2) or "s")[0]
        try:
            return now + timedelta(seconds=float(relative.group(1)) * _UNITS[unit])
        except OverflowError:
            raise FieldError(field, f"{raw!r} is too far in the future") from None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise FieldError(
            field, f"give an ISO time like 2030-01-31T08:00:00+00:00, or 'in 30 seconds', "
            f"not {raw!r}"
        ) from None  # fmt: skip
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def tags(raw: str) -> list[str]:
    """Comma-separated tags, without blanks or repeats, in the order given."""
    found: list[str] = []
    for tag in (part.strip() for part in raw.split(",")):
        if tag and tag not in found:
            found.append(tag)
    return found
