"""``/metrics``: the fleet's figures for Prometheus, read from Redis through the registry
(behind the dashboard's authentication: scrape with ``Authorization: Bearer <token>`` or
basic credentials).

- ``jobmaster_queue_jobs{queue, state}``: jobs per state.
- ``jobmaster_queue_oldest_waiting_seconds{queue}``: age of the oldest queued job (0: none).
- ``jobmaster_workers``: live worker processes; ``jobmaster_worker_slots`` and
  ``jobmaster_worker_slots_busy``: their slots, in all and running an attempt.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from jobmaster import Registry


async def metrics(request: Request) -> Response:
    registry: Registry = request.app.state.registry
    collected = CollectorRegistry(auto_describe=True)
    jobs = Gauge("jobmaster_queue_jobs", "Jobs per state", ("queue", "state"), registry=collected)
    oldest = Gauge(
        "jobmaster_queue_oldest_waiting_seconds", "Age of the oldest queued job", ("queue",),
        registry=collected,
    )  # fmt: skip
    now = datetime.now(UTC)
    for queue in await registry.known_queues():
        stats = await registry.queue_stats(queue, buckets=1)
        for state, count in stats.counts.items():
            jobs.labels(queue, state.value).set(count)
        waited = stats.oldest_waiting_at
        oldest.labels(queue).set(0 if waited is None else (now - waited).total_seconds())
    workers = await registry.workers()
    Gauge("jobmaster_workers", "Live workers", registry=collected).set(len(workers))
    slots = Gauge("jobmaster_worker_slots", "Slots of the live workers", registry=collected)
    slots.set(sum(w.concurrency for w in workers))
    busy = Gauge("jobmaster_worker_slots_busy", "Slots running an attempt", registry=collected)
    busy.set(sum(w.busy for w in workers))
    return Response(generate_latest(collected), media_type=CONTENT_TYPE_LATEST)
