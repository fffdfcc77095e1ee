"""Prometheus metrics of a worker process, served by ``jobmaster worker --metrics-port``.

A :class:`WorkerMetrics` is a middleware: its counters and histograms move with the hooks of
the worker's attempts, in a collector registry of its own (not prometheus_client's global
one). Names (labels ``queue`` and ``name`` unless said otherwise):

- ``jobmaster_jobs_started_total``: attempts started.
- ``jobmaster_jobs_succeeded_total``, ``jobmaster_jobs_failed_total``,
  ``jobmaster_jobs_cancelled_total``: jobs that ended so, counted once Redis recorded it.
- ``jobmaster_jobs_retried_total``: attempts that failed and left a retry scheduled.
- ``jobmaster_jobs_lost_total`` (``queue`` only): attempts whose worker died or whose lease
  expired, counted by the worker that took them back.
- ``jobmaster_attempt_duration_seconds``: how long attempts ran (a histogram).
- ``jobmaster_enqueue_to_start_seconds``: from enqueue to the start of a job's first attempt
  (a histogram).
- ``jobmaster_slots_busy`` and ``jobmaster_slots`` (no labels): attempts running, and the
  worker's concurrency.

With ``--processes N``, child ``i`` (from 0) serves its own metrics on ``PORT + i``: scrape
each port (Prometheus sums them by label).
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from jobmaster.ops.middleware import AttemptEnd, AttemptInfo, Middleware

LABELS = ("queue", "name")
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


class WorkerMetrics(Middleware):
    """The Prometheus metrics of one worker process.

    Args:
        concurrency: the worker's slots (``jobmaster_slots``).
        registry: the collector registry to put them in (default: a new one).
    """

    def __init__(self, concurrency: int, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.started = Counter("jobmaster_jobs_started", "Attempts started", LABELS, registry=r)
        self.succeeded = Counter("jobmaster_jobs_succeeded", "Jobs succeeded", LABELS, registry=r)
        self.failed = Counter("jobmaster_jobs_failed", "Jobs failed", LABELS, registry=r)
        self.cancelled = Counter("jobmaster_jobs_cancelled", "Jobs cancelled", LABELS, registry=r)
        self.retried = Counter(
            "jobmaster_jobs_retried", "Failed attempts with a retry scheduled", LABELS, registry=r
        )
        self.lost = Counter(
            "jobmaster_jobs_lost", "Attempts lost (worker died or lease expired)", ("queue",),
            registry=r,
        )  # fmt: skip
        self.duration = Histogram(
            "jobmaster_attempt_duration_seconds", "Seconds attempts ran", LABELS,
            buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "jobmaster_enqueue_to_start_seconds", "Seconds from enqueue to the first attempt",
            LABELS, buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.busy = Gauge("jobmaster_slots_busy", "Attempts running", registry=r)
        Gauge("jobmaster_slots", "Attempts the worker runs at once", registry=r).set(concurrency)
        self._ended = {
            "succeeded": self.succeeded,
            "failed": self.failed,
            "cancelled": self.cancelled,
        }

    def before_attempt(self, attempt: AttemptInfo) -> None:
        self.busy.inc()
        self.started.labels(attempt.queue, attempt.name).inc()
        if attempt.attempt == 1 and attempt.created_at > 0:
            waited = max(0.0, attempt.started_at - attempt.created_at)
            self.latency.labels(attempt.queue, attempt.name).observe(waited)

    def after_attempt(self, attempt: AttemptInfo, end: AttemptEnd) -> None:
        self.busy.dec()
        self.duration.labels(attempt.queue, attempt.name).observe(end.duration)
        if end.next_state == "scheduled":
            self.retried.labels(attempt.queue, attempt.name).inc()

    def on_final(self, attempt: AttemptInfo, end: AttemptEnd) -> None:
        self._ended[end.next_state].labels(attempt.queue, attempt.name).inc()

    def on_lost(self, queue: str, job_ids: Sequence[str]) -> None:
        self.lost.labels(queue).inc(len(job_ids))

    def serve(self, port: int, host: str = "") -> None:
        """Serve ``/metrics`` on ``host:port`` from a daemon thread (host "": every
        interface)."""
        start_http_server(port, host, registry=self.registry)
