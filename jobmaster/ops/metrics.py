"""Prometheus metrics of a worker process, served by ``jobmaster worker --metrics-port``.

A :class:`WorkerMetrics` is an attempt recorder (:mod:`jobmaster.ops.recorder`): the worker
tells it of each attempt's end, and it keeps its counters and histograms in a collector
registry of its own (not prometheus_client's global one). Names (labels ``queue`` and
``name`` unless said otherwise):

- ``jobmaster_jobs_started_total``: attempts started (also those whose job could not be
  decoded or validated: they end failed at once).
- ``jobmaster_jobs_succeeded_total``, ``jobmaster_jobs_failed_total``,
  ``jobmaster_jobs_cancelled_total``: jobs that ended so with an attempt of this worker.
- ``jobmaster_jobs_retried_total``: attempts that failed and left a retry scheduled.
- ``jobmaster_jobs_lost_total``: attempts whose worker died or whose lease expired, counted
  by the worker that took them back (``name`` is "" for a job whose record could not be
  read).
- ``jobmaster_attempt_duration_seconds``: how long attempts ran (a histogram).
- ``jobmaster_enqueue_to_start_seconds``: from enqueue to the start of a job's first attempt
  (a histogram).
- ``jobmaster_slots_busy`` and ``jobmaster_slots`` (no labels): attempts running, and the
  worker's concurrency.

With ``--processes N``, child ``i`` (from 0) serves its own metrics on ``PORT + i``: scrape
each port (Prometheus sums them by label).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from jobmaster.ops.recorder import AttemptRecorder, EndedAs, Held, RecordedAttempt, RunningTable

LABELS = ("queue", "name")
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
_BUCKETS, _bucket = DURATION_BUCKETS, bisect_left  # module globals, read on every attempt
SNAPSHOT_TIMEOUT = 1.0
"""Seconds a scrape waits for the worker's event loop to copy the figures."""
COUNTERS = {
    "started": "Attempts started",
    "succeeded": "Jobs succeeded",
    "failed": "Jobs failed",
    "cancelled": "Jobs cancelled",
    "retried": "Failed attempts with a retry scheduled",
}


class _Histogram:
    """Observations in buckets (not cumulative: summed up when scraped)."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(DURATION_BUCKETS, value)] += 1
        self.total += value

    def copy(self) -> _Histogram:
        copied = _Histogram()
        copied.counts, copied.total = list(self.counts), self.total
        return copied

    def buckets(self) -> list[tuple[str, float]]:
        bounds = [*map(str, DURATION_BUCKETS), "+Inf"]
        cumulative, running = [], 0
        for bound, count in zip(bounds, list(self.counts), strict=True):
            running += count
            cumulative.append((bound, float(running)))
        return cumulative


class _JobFigures:
    """The figures of one job name in one queue."""

    __slots__ = (
        "abandoned", "cancelled", "duration", "failed", "latency", "retried", "succeeded",
    )  # fmt: skip

    def __init__(self) -> None:
        self.succeeded = self.failed = self.cancelled = self.retried = self.abandoned = 0
        self.duration = _Histogram()
        self.latency = _Histogram()

    @property
    def ended(self) -> int:
        return self.succeeded + self.failed + self.cancelled + self.retried


class _Counted(NamedTuple):
    """The figures of one job name in one queue, copied for a scrape."""

    started: int
    succeeded: int
    failed: int
    cancelled: int
    retried: int
    duration: _Histogram
    latency: _Histogram


class _Snapshot(NamedTuple):
    """The figures as they were at one point of the worker's event loop."""

    jobs: dict[tuple[str, str], _Counted]
    lost: dict[tuple[str, str], int]
    busy: int


class WorkerMetrics(AttemptRecorder, Collector):
    """The Prometheus metrics of one worker process.

    The worker tells it of each batch of attempt ends it recorded (an
    :class:`AttemptRecorder`: one call per batch, a few integer additions per attempt).
    Attempts started are those recorded, abandoned (handed back, lease lost), ended but not
    recorded yet, and running. When ``/metrics`` is scraped, the figures are
    copied in the worker's event loop (one consistent snapshot: no counter ever goes back),
    and the Prometheus families built from the copy in the server's thread.

    Args:
        concurrency: the worker's slots (``jobmaster_slots``).
        registry: the collector registry to put them in (default: a new one).
    """

    def __init__(self, concurrency: int, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.concurrency = concurrency
        self.lost: dict[tuple[str, str], int] = {}
        self._jobs: dict[str, dict[str, _JobFigures]] = {}
        self._running: RunningTable | None = None
        self._held: Held | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last = _Snapshot({}, {}, 0)
        self._clock_offset = time.time() - time.monotonic()
        self.registry.register(self)

    def attach(self, running: RunningTable, held: Held, loop: asyncio.AbstractEventLoop) -> None:
        self._running, self._held, self._loop = running, held, loop
        self._clock_offset = time.time() - time.monotonic()

    def _figures(self, queue: str, name: str) -> _JobFigures:
        names = self._jobs.get(queue)
        if names is None:
            names = self._jobs[queue] = {}
        figures = names.get(name)
        if figures is None:
            figures = names[name] = _JobFigures()
        return figures

    def attempts_recorded(
        self, ended: Sequence[tuple[RecordedAttempt, EndedAs]], recorded: Sequence[int]
    ) -> None:
        # every job's path: one loop per batch, histogram observations inlined, the figures
        # of the previous job's name kept (a batch is mostly one name)
        jobs, offset, bucket, bounds = self._jobs, self._clock_offset, _bucket, _BUCKETS
        queue, name, figures = "", "", None
        for (job, how), outcome in zip(ended, recorded, strict=True):
            if figures is None or job.name != name or job.queue != queue:
                queue, name = job.queue, job.name
                try:
                    figures = jobs[queue][name]
                except KeyError:
                    figures = self._figures(queue, name)
            started = job.started
            ran = job.ended - started
            duration = figures.duration
            duration.counts[bucket(bounds, ran)] += 1
            duration.total += ran
            if outcome != 1:  # not recorded as the worker said (Recorded.RECORDED)
                if outcome == 3:  # recorded as failed instead (Recorded.REPLACED)
                    figures.failed += 1
                else:
                    figures.abandoned += 1
            else:
                state = how.next_state
                if state == "succeeded":
                    figures.succeeded += 1
                elif state == "scheduled":
                    figures.retried += 1
                elif state == "failed":
                    figures.failed += 1
                else:
                    figures.cancelled += 1
            if job.attempt == 1 and job.created_ms > 0:
                waited = started + offset - job.created_ms / 1000
                waited = waited if waited > 0.0 else 0.0
                latency = figures.latency
                latency.counts[bucket(bounds, waited)] += 1
                latency.total += waited

    def attempt_abandoned(self, job: RecordedAttempt) -> None:
        self._figures(job.queue, job.name).abandoned += 1

    def on_lost(self, queue: str, job_ids: Sequence[str], names: Sequence[str]) -> None:
        for name in names:
            self.lost[queue, name] = self.lost.get((queue, name), 0) + 1

    def snapshot(self) -> _Snapshot:
        """The figures now (call it in the worker's event loop, or when none runs)."""
        running = self._running.values() if self._running is not None else ()
        starts: dict[tuple[str, str], int] = {}
        for job in running:
            if job.name:  # its record was decoded: the attempt has started
                starts[job.queue, job.name] = starts.get((job.queue, job.name), 0) + 1
        for job in self._held() if self._held is not None else ():  # ended, not recorded
            starts[job.queue, job.name] = starts.get((job.queue, job.name), 0) + 1
        jobs = {}
        for queue, names in self._jobs.items():
            for name, f in names.items():
                key = (queue, name)
                started = f.ended + f.abandoned + starts.pop(key, 0)
                jobs[key] = _Counted(
                    started, f.succeeded, f.failed, f.cancelled, f.retried,
                    f.duration.copy(), f.latency.copy(),
                )  # fmt: skip
        for key, count in starts.items():  # names with no attempt ended yet
            jobs[key] = _Counted(count, 0, 0, 0, 0, _Histogram(), _Histogram())
        return _Snapshot(jobs, dict(self.lost), len(running))

    def _current(self) -> _Snapshot:
        """A snapshot taken in the worker's loop (the last one if the loop does not answer
        within a second: it is blocked, or closed)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._last = self.snapshot()
            return self._last
        taken: concurrent.futures.Future[_Snapshot] = concurrent.futures.Future()

        def take() -> None:
            try:
                taken.set_result(self.snapshot())
            except Exception as exc:  # reported to the scrape, never to the loop
                taken.set_exception(exc)

        try:
            loop.call_soon_threadsafe(take)
            self._last = taken.result(timeout=SNAPSHOT_TIMEOUT)
        except (RuntimeError, concurrent.futures.TimeoutError):
            pass  # the loop closed or is blocked: the figures of the last scrape
        return self._last

    def collect(self) -> Iterator[Metric]:
        """The families of the metrics, as they are now (called by prometheus_client)."""
        snapshot = self._current()
        jobs = list(snapshot.jobs.items())
        for field, help_text in COUNTERS.items():
            counter = CounterMetricFamily(f"jobmaster_jobs_{field}", help_text, labels=LABELS)
            for labels, figures in jobs:
                counter.add_metric(labels, getattr(figures, field))
            yield counter
        lost = CounterMetricFamily(
            "jobmaster_jobs_lost", "Attempts lost (worker died or lease expired)", labels=LABELS
        )
        for labels, count in snapshot.lost.items():
            lost.add_metric(labels, count)
        yield lost
        for field, name, help_text in (
            ("duration", "jobmaster_attempt_duration_seconds", "Seconds attempts ran"),
            ("latency", "jobmaster_enqueue_to_start_seconds", "Seconds to the first attempt"),
        ):
            histogram = HistogramMetricFamily(name, help_text, labels=LABELS)
            for labels, figures in jobs:
                observed: _Histogram = getattr(figures, field)
                histogram.add_metric(labels, observed.buckets(), observed.total)
            yield histogram
        yield GaugeMetricFamily("jobmaster_slots_busy", "Attempts running", value=snapshot.busy)
        yield GaugeMetricFamily(
            "jobmaster_slots", "Attempts the worker runs at once", value=self.concurrency
        )

    def serve(self, port: int, host: str = "") -> None:
        """Serve ``/metrics`` on ``host:port`` from a daemon thread (host "": every
        interface)."""
        start_http_server(port, host, registry=self.registry)
