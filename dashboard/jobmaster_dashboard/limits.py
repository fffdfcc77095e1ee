"""The overview's Limits section: per queue and limit key (a job's name, or ``<name>:<value
of its limit_key>``), the attempts running against ``max_running``, the rate, and the
queued jobs the limits hold back now, read through ``registry.queue_limits``."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from jobmaster import Registry
from jobmaster.store.types import LimitState

MAX_KEYS_SHOWN = 20
"""Limit keys listed per queue (those holding jobs back first); the rest are summed up."""

_UNITS = ((3_600_000, "h"), (60_000, "min"), (1000, "s"), (1, "ms"))


@dataclass(frozen=True)
class LimitRow:
    """One limit key as the page shows it."""

    key: str
    job_name: str | None
    """The job the key belongs to, when the dashboard knows the application's jobs."""
    running: str
    """``"2 / 3"`` (running / max_running), or ``"-"`` without max_running."""
    rate: str
    """``"5/s"``, ``"100/min"``, ``"5 per 10 s"``, or ``"-"``."""
    held_back: int


@dataclass(frozen=True)
class QueueLimits:
    """The limit keys of one queue, and a sum of those not listed."""

    queue: str
    rows: list[LimitRow]
    more: int
    """Limit keys not listed."""
    more_running: int
    more_held_back: int


def rate_text(rate: str | None) -> str:
    """``"<starts>/<window ms>"`` for people: ``5/s``, ``100/min``, ``5 per 10 s``."""
    if not rate:
        return "-"
    starts, _, window = rate.partition("/")
    try:
        count, window_ms = int(starts), int(window)
    except ValueError:
        return rate
    for size, unit in _UNITS:
        if window_ms == size:
            return f"{count}/{unit}"
    for size, unit in _UNITS:
        if window_ms >= size:
            return f"{count} per {window_ms / size:g} {unit}"
    return rate


def job_name_of(key: str, names: Collection[str]) -> str | None:
    """The job a limit key counts for: its name, or the longest name it starts with
    followed by ``:``."""
    if key in names:
        return key
    matches = [n for n in names if key.startswith(f"{n}:")]
    return max(matches, key=len) if matches else None


def _row(limit: LimitState, names: Collection[str]) -> LimitRow:
    running = f"{limit.running} / {limit.max_running}" if limit.max_running is not None else "-"
    return LimitRow(
        key=limit.key,
        job_name=job_name_of(limit.key, names),
        running=running,
        rate=rate_text(limit.rate),
        held_back=limit.waiting,
    )


def queue_view(queue: str, limits: Sequence[LimitState], names: Collection[str]) -> QueueLimits:
    """The rows of one queue: the keys holding jobs back, then the busiest, at most
    :data:`MAX_KEYS_SHOWN`."""
    ordered = sorted(limits, key=lambda s: (-s.waiting, -s.running, s.key))
    shown, rest = ordered[:MAX_KEYS_SHOWN], ordered[MAX_KEYS_SHOWN:]
    return QueueLimits(
        queue=queue,
        rows=[_row(limit, names) for limit in shown],
        more=len(rest),
        more_running=sum(s.running for s in rest),
        more_held_back=sum(s.waiting for s in rest),
    )


async def read_limits(registry: Registry, queues: Sequence[str]) -> list[QueueLimits]:
    """The queues among ``queues`` whose jobs have limits, with their limit keys."""
    found = await asyncio.gather(*(registry.queue_limits(q) for q in queues))
    names = set(registry.jobs)
    return [
        queue_view(queue, limits, names)
        for queue, limits in zip(queues, found, strict=True)
        if limits
    ]
