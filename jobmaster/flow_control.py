"""Flow control of a job: unique keys, concurrency limits and rate limits.

What a definition asks for (``unique``, ``unique_key``, ``unique_for``, ``max_running``,
``limit_key``, ``rate_limit``) becomes one line per job, stored beside the job when it is
enqueued; the scripts that enqueue, claim and end jobs decide by it (see
``jobmaster/lua/limits.lua``), so that no race between producers or workers exceeds a limit.
Jobs without controls never go through any of it.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

RATE_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h)\s*$")
RATE_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
MAX_KEY = 200
"""Characters of a unique or limit key kept as they are; longer values (and values with a
tab or a line break) are replaced by their SHA-1."""


def parse_rate(text: str) -> tuple[int, int]:
    """``"10/s"`` (also ``/m``, ``/h``, ``/ms``, and ``"5/10s"``): (starts, window in ms).

    Raises:
        ValueError: the text is not a rate, or its count or window is not positive.
    """
    match = RATE_PATTERN.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"rate_limit must look like '10/s', '100/m', '1000/h' or '5/10s', got {text!r}"
        )
    count, length, unit = int(match[1]), float(match[2] or 1), match[3]
    window = round(length * RATE_UNITS_MS[unit])
    if count < 1 or window < 1:
        raise ValueError(f"rate_limit needs at least one start per window, got {text!r}")
    return count, window


RESOURCE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]i?b?|b)?\s*$", re.IGNORECASE)
SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}
MAX_RESOURCE = 1e18


def resource_amount(name: str, value: Any) -> float:
    """One resource's amount: a number, or a size such as ``"8G"`` (binary units)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"resource {name!r}: expected a number or a size like '8G', got {value!r}")
    if isinstance(value, str):
        match = SIZE.match(value)
        if match is None:
            raise ValueError(
                f"resource {name!r}: expected a number or a size like '512M' or '8G', got {value!r}"
            )
        unit = (match[2] or "").lower().rstrip("b").rstrip("i")
        value = float(match[1]) * SIZE_UNITS[unit]
    amount = float(value)
    if not 0 <= amount <= MAX_RESOURCE:  # NaN too
        raise ValueError(f"resource {name!r}: {value!r} is not an amount from 0 to 1e18")
    return amount


def parse_resources(resources: Mapping[str, Any] | str | None) -> dict[str, float]:
    """Resources as a job declares them (``{"gpu": 1, "mem": "8G"}``) or a worker advertises
    them (``"cpu=8,gpu=2,mem=64G"``), checked: names of lowercase letters, digits and ``_``,
    amounts from 0 to 1e18.

    Raises:
        ValueError: what is wrong.
    """
    if resources is None:
        return {}
    if isinstance(resources, str):
        pairs = {}
        for item in filter(None, (part.strip() for part in resources.split(","))):
            name, sep, amount = item.partition("=")
            if not sep:
                raise ValueError(f"resources: expected name=amount, got {item!r}")
            pairs[name.strip()] = amount.strip()
        resources = pairs
    if not isinstance(resources, Mapping):
        raise ValueError(f"resources must be a mapping of name to amount, got {resources!r}")
    parsed = {}
    for name, value in resources.items():
        if not isinstance(name, str) or not RESOURCE_NAME.match(name):
            raise ValueError(
                f"resource name {name!r}: lowercase letters, digits and _, starting with a letter"
            )
        parsed[name] = resource_amount(name, value)
    return parsed


def resources_text(resources: Mapping[str, float]) -> str:
    """``{"gpu": 1.0, "mem": 8589934592.0}`` as the scripts read it: ``gpu=1,mem=8589934592``."""
    return ",".join(f"{name}={amount:.17g}" for name, amount in sorted(resources.items()))


def template_fields(template: str) -> list[str]:
    """The parameter names a key template uses (``"report:{account}"`` -> ``["account"]``).

    Raises:
        ValueError: the template is not plain text with ``{name}`` fields.
    """
    fields = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"key template {template!r}: {exc}") from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            raise ValueError(
                f"key template {template!r}: fields are plain parameter names such as "
                f"{{account}}, got {{{field}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}}"
            )
        fields.append(field)
    return fields


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _fit(key: str) -> str:
    if len(key) > MAX_KEY or "\t" in key or "\n" in key or "\r" in key:
        return "sha1:" + hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()
    return key


def _render(template: str, arguments: Mapping[str, Any]) -> str:
    out = []
    for literal, field, _, _ in string.Formatter().parse(template):
        out.append(literal)
        if field is not None:
            out.append(_text(arguments.get(field)))
    return "".join(out)


@dataclass(frozen=True)
class FlowControls:
    """The controls of one job definition, checked against its handler's parameters.

    Args:
        name: the job's name (limit keys start with it).
        unique: one live job per set of arguments (or per ``unique_key``).
        unique_key: a template over the arguments (``"report:{account}"``); implies unique.
        unique_for: seconds a unique key stays taken after its job ended (0: freed at once).
        max_running: attempts of the job running at once over all workers (per limit key).
        limit_key: a template over the arguments: the limits apply per value.
        rate_limit: starts per window over all workers (``"10/s"``), per limit key.
        resources: what one attempt needs of a worker's advertised resources, as (name,
            amount) pairs.
    """

    name: str
    unique: bool = False
    unique_key: str | None = None
    unique_for: float = 0.0
    max_running: int | None = None
    limit_key: str | None = None
    rate_limit: str | None = None
    resources: tuple[tuple[str, float], ...] = ()

    @property
    def active(self) -> bool:
        """Whether jobs of this definition have any control."""
        return bool(
            self.unique or self.unique_key or self.max_running or self.rate_limit or self.resources
        )

    @property
    def declared(self) -> bool:
        """Whether the definition sets any control option (to check)."""
        return self.active or self.limit_key is not None or bool(self.unique_for)

    @property
    def limited(self) -> bool:
        return bool(self.max_running or self.rate_limit)

    def check(self, parameters: Iterable[str]) -> None:
        """Fail at declaration when a template names a parameter the handler lacks, or a
        limit key comes without a limit.

        Raises:
            ValueError: what is wrong, naming the job.
        """
        known = set(parameters)
        for option, template in (("unique_key", self.unique_key), ("limit_key", self.limit_key)):
            if template is None:
                continue
            try:
                fields = template_fields(template)
            except ValueError as exc:
                raise ValueError(f"job {self.name!r}: {option}: {exc}") from None
            unknown = [f for f in fields if f not in known]
            if unknown:
                raise ValueError(
                    f"job {self.name!r}: {option} {template!r} names {', '.join(unknown)}, "
                    f"which the handler does not take; its parameters: "
                    f"{', '.join(sorted(known)) or '(none)'}"
                )
        if self.limit_key is not None and not self.limited:
            raise ValueError(
                f"job {self.name!r}: limit_key= sets what max_running= or rate_limit= count "
                f"per value; give one of them"
            )
        if self.unique_for and not (self.unique or self.unique_key):
            raise ValueError(f"job {self.name!r}: unique_for= needs unique=True or unique_key=")

    def line(self, packed_arguments: bytes) -> str:
        """The controls of one job with these (packed, validated) arguments, as the scripts
        read them: unique key, unique_for ms, limit key, max_running, rate count, rate
        window ms, resources, tab-separated (empty where not set)."""
        arguments: Mapping[str, Any] | None = None
        if self.unique_key is not None or self.limit_key is not None:
            unpacked = msgpack.unpackb(packed_arguments, raw=False)
            arguments = unpacked if isinstance(unpacked, dict) else {}
        unique = ""
        if self.unique_key is not None:
            unique = _fit(_render(self.unique_key, arguments or {}))
        elif self.unique:
            digest = hashlib.sha1(packed_arguments, usedforsecurity=False).hexdigest()
            unique = f"{self.name}:{digest}"
        limit = ""
        if self.limited:
            limit = self.name
            if self.limit_key is not None:
                limit = _fit(f"{self.name}:{_render(self.limit_key, arguments or {})}")
        count, window = parse_rate(self.rate_limit) if self.rate_limit else (None, None)
        values = (
            unique,
            str(round(self.unique_for * 1000)) if unique and self.unique_for else "",
            limit,
            str(self.max_running) if limit and self.max_running else "",
            str(count) if limit and count else "",
            str(window) if limit and window else "",
            resources_text(dict(self.resources)),
        )
        return "\t".join(values)
