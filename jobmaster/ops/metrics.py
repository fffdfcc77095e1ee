"""Prometheus metrics of a worker process, served by ``jobmaster worker --metrics-port``.

A :class:`WorkerMetrics` is a middleware: its counters and histograms move with the hooks of
the worker's attempts, in a collector registry of its own (not prometheus_client's global
one). Names (labels ``queue`` and ``name`` unless said otherwise):

- ``jobmaster_jobs_started_total``: attempts started.
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

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from jobmaster.ops.middleware import AttemptEnd, AttemptInfo, Middleware

LABELS = ("queue", "name")
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
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

    def buckets(self) -> list[tuple[str, float]]:
        bounds = [*map(str, DURATION_BUCKETS), "+Inf"]
        cumulative, running = [], 0
        for bound, count in zip(bounds, list(self.counts), strict=True):
            running += count
            cumulative.append((bound, float(running)))
        return cumulative


class _JobFigures:
    """The figures of one job name in one queue."""

    __slots__ = ("cancelled", "duration", "failed", "latency", "retried", "started", "succeeded")

    def __init__(self) -> None:
        self.started = self.succeeded = self.failed = self.cancelled = self.retried = 0
        self.duration = _Histogram()
        self.latency = _Histogram()


class WorkerMetrics(Middleware, Collector):
    """The Prometheus metrics of one worker process.

    The hooks count in plain integers (an attempt costs a few dictionary lookups); the
    Prometheus families are built when ``/metrics`` is scraped.

    Args:
        concurrency: the worker's slots (``jobmaster_slots``).
        registry: the collector registry to put them in (default: a new one).
    """

    def __init__(self, concurrency: int, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.concurrency = concurrency
        self.busy = 0
        self.lost: dict[tuple[str, str], int] = {}
        self._jobs: dict[tuple[str, str], _JobFigures] = {}
        self.registry.register(self)

    def before_attempt(self, attempt: AttemptInfo) -> None:
        self.busy += 1
        key = (attempt.queue, attempt.name)
        figures = self._jobs.get(key)
        if figures is None:
            figures = self._jobs[key] = _JobFigures()
        figures.started += 1
        if attempt.attempt == 1 and attempt.created_at > 0:  # inlined _Histogram.observe
            waited = attempt.started_at - attempt.created_at
            waited = waited if waited > 0.0 else 0.0
            latency = figures.latency
            latency.counts[bisect_left(DURATION_BUCKETS, waited)] += 1
            latency.total += waited

    def after_attempt(self, attempt: AttemptInfo, end: AttemptEnd) -> None:
        # Ends are counted as the worker reports them (not in on_final, once Redis recorded
        # them): one hook per attempt less, and they differ only for an attempt whose lease
        # was taken over between its end and its record.
        self.busy -= 1
        figures = self._jobs[attempt.queue, attempt.name]
        duration, ran = figures.duration, end.duration
        duration.counts[bisect_left(DURATION_BUCKETS, ran)] += 1
        duration.total += ran
        state = end.next_state
        if state == "succeeded":
            figures.succeeded += 1
        elif state == "scheduled":
            figures.retried += 1
        elif state == "failed":
            figures.failed += 1
        else:
            figures.cancelled += 1

    def on_lost(self, queue: str, job_ids: Sequence[str], names: Sequence[str]) -> None:
        for name in names:
            self.lost[queue, name] = self.lost.get((queue, name), 0) + 1

    def collect(self) -> Iterator[Metric]:
        """The families of the metrics, as they are now (called by prometheus_client)."""
        jobs = list(self._jobs.items())
        for field, help_text in COUNTERS.items():
            counter = CounterMetricFamily(f"jobmaster_jobs_{field}", help_text, labels=LABELS)
            for labels, figures in jobs:
                counter.add_metric(labels, getattr(figures, field))
            yield counter
        lost = CounterMetricFamily(
            "jobmaster_jobs_lost", "Attempts lost (worker died or lease expired)", labels=LABELS
        )
        for labels, count in list(self.lost.items()):
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
        yield GaugeMetricFamily("jobmaster_slots_busy", "Attempts running", value=self.busy)
        yield GaugeMetricFamily(
            "jobmaster_slots", "Attempts the worker runs at once", value=self.concurrency
        )

    def serve(self, port: int, host: str = "") -> None:
        """Serve ``/metrics`` on ``host:port`` from a daemon thread (host "": every
        interface)."""
        start_http_server(port, host, registry=self.registry)
