"""The overview's Limits section: per queue and limit key (a job's name, or ``<name>:<value
of its limit_key>``), the attempts running against ``max_running``, the rate, and the
queued jobs the limits hold back now (``registry.queue_limits``); and the jobs waiting for a
worker with enough free resources, those that no live worker could ever run first
(``registry.held_for_resources``)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from jobmaster import Registry
from jobmaster.store.types import HeldForResources, LimitState

MAX_KEYS_SHOWN = 20
"""Limit keys listed per queue (those holding jobs back first); the rest are summed up."""

MAX_UNFIT_SHOWN = 10
"""Jobs that no live worker could run, named per queue."""

_UNITS = ((3_600_000, "h"), (60_000, "min"), (1000, "s"), (1, "ms"))
_SIZES = ((1024**4, "T"), (1024**3, "G"), (1024**2, "M"), (1024, "K"))


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


@dataclass(frozen=True)
class ResourceWait:
    """The jobs of a queue waiting for a worker with enough free resources."""

    queue: str
    held: int
    unfit: int
    """How many need more than any live worker of the queue offers."""
    unfit_shown: list[tuple[str, str]]
    """(job id, what it needs) of the first :data:`MAX_UNFIT_SHOWN` of them."""


def amount_text(amount: float) -> str:
    """An amount as a job declares it: ``1``, ``0.5``, or a size such as ``8G``."""
    for size, unit in _SIZES:
        if amount >= size and amount % size == 0:
            return f"{amount / size:g}{unit}"
    return f"{amount:g}"


def needs_text(needs: Mapping[str, float]) -> str:
    """``gpu=1, mem=8G``."""
    return ", ".join(f"{name}={amount_text(a)}" for name, a in sorted(needs.items())) or "-"


def resource_wait(queue: str, held: Sequence[HeldForResources]) -> ResourceWait:
    unfit = [h for h in held if not h.fits_a_live_worker]
    return ResourceWait(
        queue=queue,
        held=len(held),
        unfit=len(unfit),
        unfit_shown=[(h.job_id, needs_text(h.needs)) for h in unfit[:MAX_UNFIT_SHOWN]],
    )


async def read_resource_waits(registry: Registry, queues: Sequence[str]) -> list[ResourceWait]:
    """The queues among ``queues`` with jobs waiting for resources."""
    found = await asyncio.gather(*(registry.held_for_resources(q) for q in queues))
    return [resource_wait(q, held) for q, held in zip(queues, found, strict=True) if held]


async def resource_hold(registry: Registry, queue: str, job_id: str) -> HeldForResources | None:
    """What a job held for resources needs, and whether a live worker could run it."""
    held = await registry.held_for_resources(queue)
    return next((h for h in held if h.job_id == job_id), None)
