"""``/metrics`` of the dashboard: the fleet's figures, parsed as Prometheus reads them,
behind the dashboard's authentication."""

from __future__ import annotations

from dashboard_support import TOKEN, client_for, failed_job_id
from prometheus_client.parser import text_string_to_metric_families

from jobmaster import Registry
from jobmaster.testing import run_jobs
from tests.conftest import live_worker, wait_until


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_count_jobs_per_state_waiting_age_and_workers(registry: Registry) -> None:
    await failed_job_id(registry)
    echo = registry.get("echo")
    await echo.enqueue_many([(f"t{i}",) for i in range(3)])
    await run_jobs(registry)
    await echo.options(queue="idle").enqueue_many([("a",), ("b",)])
    async with live_worker(registry, queues=["dash"], concurrency=7):
        await wait_until(registry.workers)
        with client_for(registry, auth=TOKEN) as client:
            refused = client.get("/metrics")
            reply = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert refused.status_code == 401
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    found = samples(reply.text)
    assert found[("jobmaster_queue_jobs", (("queue", "dash"), ("state", "succeeded")))] == 3
    assert found[("jobmaster_queue_jobs", (("queue", "dash"), ("state", "failed")))] == 1
    assert found[("jobmaster_queue_jobs", (("queue", "idle"), ("state", "queued")))] == 2
    assert found[("jobmaster_queue_oldest_waiting_seconds", (("queue", "dash"),))] == 0
    assert found[("jobmaster_queue_oldest_waiting_seconds", (("queue", "idle"),))] >= 0
    assert found[("jobmaster_workers", ())] == 1
    assert found[("jobmaster_worker_slots", ())] == 7
    assert found[("jobmaster_worker_slots_busy", ())] == 0
