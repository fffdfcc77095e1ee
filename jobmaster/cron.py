"""When schedules tick: cron expressions (croniter, in a timezone) and fixed intervals.

Times are integer milliseconds since the Unix epoch. :func:`plan_ticks` decides which
ticks of a schedule to fire now, given the ticks that fell due since it last fired and the
last stretch when no scheduler ran (whose ticks follow the schedule's catch-up policy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jobmaster.errors import ConfigError

if TYPE_CHECKING:
    from croniter import croniter

CatchUp = Literal["skip", "latest", "all"]
CATCH_UP_POLICIES: tuple[CatchUp, ...] = ("skip", "latest", "all")

MIN_INTERVAL = 1.0
"""The shortest ``every=``, in seconds (cron's own resolution is one second too)."""
MAX_TICKS_PER_FIRE = 100
"""Ticks fired for one schedule in one call; the rest follow in the next call at once."""


class TickRule(Protocol):
    def next_after(self, ms: int) -> int:
        """The first tick strictly after ``ms``."""

    def prev_before(self, ms: int) -> int:
        """The last tick strictly before ``ms``."""


@dataclass(frozen=True)
class CronRule:
    """Ticks of a croniter expression in a timezone (DST handled as croniter does)."""

    expression: str
    tz: str

    def _iter(self, ms: int) -> croniter:
        from croniter import croniter  # here: only processes with cron schedules need it

        return croniter(self.expression, datetime.fromtimestamp(ms / 1000, ZoneInfo(self.tz)))

    def next_after(self, ms: int) -> int:
        return _ms(self._iter(ms).get_next(datetime))

    def prev_before(self, ms: int) -> int:
        return _ms(self._iter(ms).get_prev(datetime))


@dataclass(frozen=True)
class IntervalRule:
    """Ticks every ``every_ms`` milliseconds, on multiples of it since the Unix epoch."""

    every_ms: int

    def next_after(self, ms: int) -> int:
        return (ms // self.every_ms + 1) * self.every_ms

    def prev_before(self, ms: int) -> int:
        return ((ms - 1) // self.every_ms) * self.every_ms


def _ms(when: datetime) -> int:
    return round(when.timestamp() * 1000)


def check_timezone(tz: str) -> str:
    """``tz`` if it is an IANA timezone name; :class:`ConfigError` otherwise."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigError(
            f"unknown timezone {tz!r}; use an IANA name such as 'UTC' or 'Europe/Berlin'"
        ) from None
    return tz


def check_cron(expression: str, tz: str = "UTC") -> str:
    """``expression`` if croniter accepts it and it ever ticks; :class:`ConfigError` otherwise.

    Five fields (minute hour day month weekday), or six with seconds last (croniter's
    order), or an alias such as ``@daily``.
    """
    from croniter import CroniterError

    text = " ".join(str(expression).split())
    fields = text.split(" ")
    if not text.startswith("@") and len(fields) not in (5, 6):
        raise ConfigError(
            f"cron expression {expression!r} has {len(fields)} field(s); give 5 (minute hour "
            f"day month weekday) or 6 (the same, then seconds), e.g. '0 3 * * *'"
        )
    try:
        CronRule(text, check_timezone(tz)).next_after(0)
    except CroniterError as exc:
        raise ConfigError(f"invalid cron expression {expression!r}: {exc}") from None
    return text


def check_interval(every: float | timedelta) -> float:
    """``every`` in seconds if it is a finite number of at least :data:`MIN_INTERVAL`."""
    seconds = every.total_seconds() if isinstance(every, timedelta) else every
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or seconds < MIN_INTERVAL
    ):
        raise ConfigError(f"every= must be a number of seconds >= {MIN_INTERVAL:g}, got {every!r}")
    return float(seconds)


def rule_for(cron: str | None, every: float | None, tz: str) -> TickRule:
    if cron is not None:
        return CronRule(cron, tz)
    if every is None:
        raise ConfigError("a schedule needs cron= or every=")
    return IntervalRule(round(every * 1000))


@dataclass(frozen=True)
class Plan:
    ticks: list[int]
    """Ticks to fire now, ascending."""
    next_due: int
    """The schedule's next due tick after these."""


def plan_ticks(
    rule: TickRule,
    due: int,
    now: int,
    gap: tuple[int, int],
    catch_up: CatchUp,
    catch_up_limit: int,
) -> Plan:
    """The ticks to fire now of a schedule whose earliest unfired tick is ``due``.

    Ticks up to ``now`` are fired, late or not, except those strictly inside ``gap`` (the
    last stretch when no scheduler ran): of those, "skip" fires none, "latest" the most
    recent one and "all" the most recent ``catch_up_limit``. At most
    :data:`MAX_TICKS_PER_FIRE` ticks outside the gap are planned at once; ``next_due`` is
    then the first tick left for the next call.
    """
    gap_from, gap_to = gap
    ticks: list[int] = []
    t = due
    while t <= now and not gap_from < t < gap_to:
        if len(ticks) >= MAX_TICKS_PER_FIRE:
            return Plan(ticks, t)
        ticks.append(t)
        t = rule.next_after(t)
    if t > now:
        return Plan(ticks, t)
    # t is the first tick inside the gap: keep the most recent ones the policy allows.
    last = min(now, gap_to - 1)
    keep = {"skip": 0, "latest": 1, "all": catch_up_limit}[catch_up]
    missed: list[int] = []
    edge = last + 1
    while len(missed) < keep:
        edge = rule.prev_before(edge)
        if edge < t:
            break
        missed.append(edge)
    ticks.extend(reversed(missed))
    t = rule.next_after(last)
    start = len(ticks)
    while t <= now:
        if len(ticks) - start >= MAX_TICKS_PER_FIRE:
            break
        ticks.append(t)
        t = rule.next_after(t)
    return Plan(ticks, t)
