"""The overview's throughput chart: jobs finished per time bucket, drawn as inline SVG.

The geometry is computed here and the template only writes it out (autoescaped), so the
page needs no chart library and no JavaScript.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from jobmaster import QueueStats

WIDTH = 600
HEIGHT = 140
LEFT = 34
"""Room for the y-axis labels."""
BOTTOM = 18
"""Room for the x-axis labels."""
TOP = 6


@dataclass(frozen=True)
class Bar:
    """One bucket: succeeded jobs at the bottom, failed ones stacked on top."""

    x: float
    width: float
    succeeded_y: float
    succeeded_height: float
    failed_y: float
    failed_height: float
    title: str


@dataclass(frozen=True)
class Chart:
    queue: str
    width: int
    height: int
    plot_left: int
    plot_top: int
    plot_bottom: int
    highest: int
    """The y axis goes from 0 to this many jobs per bucket."""
    bars: list[Bar]
    x_labels: list[tuple[float, str]]
    total_succeeded: int
    total_failed: int
    bucket_seconds: int
    title: str


def _round_up(value: int) -> int:
    """A tidy top for the y axis: 1, 2, 5, 10, 20, 50, ... at least ``value``."""
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            if magnitude * factor >= value:
                return magnitude * factor
        magnitude *= 10


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def throughput_chart(stats: QueueStats) -> Chart:
    """Stacked bars of succeeded and failed jobs per bucket, oldest on the left."""
    count = len(stats.bucket_starts)
    totals = [s + f for s, f in zip(stats.succeeded, stats.failed, strict=True)]
    highest = _round_up(max(totals, default=0))
    plot_width = WIDTH - LEFT
    plot_bottom = HEIGHT - BOTTOM
    plot_height = plot_bottom - TOP
    step = plot_width / max(count, 1)
    gap = min(1.0, step / 4)
    bars = []
    for index, start in enumerate(stats.bucket_starts):
        done, failed = stats.succeeded[index], stats.failed[index]
        done_height = plot_height * done / highest
        failed_height = plot_height * failed / highest
        x = LEFT + index * step
        bars.append(
            Bar(
                x=round(x + gap / 2, 2),
                width=round(step - gap, 2),
                succeeded_y=round(plot_bottom - done_height, 2),
                succeeded_height=round(done_height, 2),
                failed_y=round(plot_bottom - done_height - failed_height, 2),
                failed_height=round(failed_height, 2),
                title=f"{_clock(start)}: {done} succeeded, {failed} failed",
            )
        )
    span = count * stats.bucket_seconds
    labels = [(float(LEFT), f"-{_duration(span)}"), (float(WIDTH), "now")]
    if count >= 2:
        labels.insert(1, (LEFT + plot_width / 2, f"-{_duration(span / 2)}"))
    return Chart(
        queue=stats.queue,
        width=WIDTH,
        height=HEIGHT,
        plot_left=LEFT,
        plot_top=TOP,
        plot_bottom=plot_bottom,
        highest=highest,
        bars=bars,
        x_labels=labels,
        total_succeeded=sum(stats.succeeded),
        total_failed=sum(stats.failed),
        bucket_seconds=stats.bucket_seconds,
        title=f"{stats.queue}: jobs finished per {_duration(stats.bucket_seconds)} "
        f"over the last {_duration(span)}",
    )


def _clock(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%H:%M UTC")
