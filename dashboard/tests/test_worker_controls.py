"""The workers page: telemetry and the jobs each worker runs, and its buttons (pause, resume,
drain, stop) acting on a real `jobmaster worker` process, with the CSRF and read-only rules."""

from __future__ import annotations

import subprocess

from dashboard_support import client_for, csrf_of

from jobmaster import Registry
from jobmaster.models import WorkerInfo
from tests.conftest import PROCAPP, finish, start_worker, stop_process, wait_until


async def _one(registry: Registry) -> list[WorkerInfo]:
    workers = await registry.workers()
    return workers if len(workers) == 1 and workers[0].telemetry is not None else []


async def _start(registry: Registry, redis_url: str) -> tuple[subprocess.Popen[str], str]:
    """A real worker of the test application (tests/apps/procapp.py) on this test's Redis."""
    worker = start_worker(PROCAPP, redis_url, "--heartbeat", "0.2", "--lease", "2")
    (info,) = await wait_until(lambda: _one(registry), timeout=10)
    return worker, info.id


async def test_workers_page_buttons_pause_resume_and_drain_a_worker(
    registry: Registry, redis_url: str
) -> None:
    @registry.job()
    async def sleepy(seconds: float) -> float:  # run by the worker's own (tests/apps/procapp.py)
        raise AssertionError("not run here")

    worker, worker_id = await _start(registry, redis_url)
    try:
        handle = await sleepy.enqueue(30)
        await wait_until(lambda: _running(registry, handle.id), timeout=10)
        with client_for(registry) as client:
            token = csrf_of(client, "/workers")
            page = client.get("/workers").text
            assert worker_id in page
            assert handle.id in page  # the job it runs
            assert " MiB" in page  # its memory
            assert 'action="/workers/pause"' in page

            refused = client.post("/workers/pause", data={"id": worker_id})
            assert refused.status_code == 403  # no CSRF token
            assert (await registry.workers())[0].state == "running"

            paused = client.post("/workers/pause", data={"id": worker_id, "csrf_token": token})
            assert paused.status_code == 303
            page = client.get(paused.headers["location"]).text
            assert "Paused 1 worker." in page
            assert 'action="/workers/resume"' in page
            assert (await registry.workers())[0].state == "paused"

            resumed = client.post("/workers/resume", data={"all": "1", "csrf_token": token})
            assert "Resumed 1 worker." in client.get(resumed.headers["location"]).text
            assert (await registry.workers())[0].state == "running"

            missing = client.post("/workers/stop", data={"id": "gone-1", "csrf_token": token})
            page = client.get(missing.headers["location"]).text
            assert "1 did not answer: gone-1." in page

            unclear = client.post("/workers/stop", data={"csrf_token": token})
            assert unclear.status_code == 400

            drained = client.post("/workers/drain", data={"id": worker_id, "csrf_token": token})
            assert "Draining 1 worker" in client.get(drained.headers["location"]).text
        await registry.stop_worker(worker_id)  # a second stop: hand the long job back now
        code, out = finish(worker)
        assert code == 0, out
    finally:
        stop_process(worker)


async def _running(registry: Registry, job_id: str) -> bool:
    workers = await registry.workers()
    return bool(workers) and workers[0].running == [job_id]


async def test_read_only_dashboard_shows_no_buttons_and_refuses_commands(
    registry: Registry, redis_url: str
) -> None:
    worker, worker_id = await _start(registry, redis_url)
    try:
        with client_for(registry, read_only=True) as client:
            token = csrf_of(client, "/workers")
            page = client.get("/workers").text
            assert worker_id in page
            assert "/workers/pause" not in page
            refused = client.post("/workers/pause", data={"id": worker_id, "csrf_token": token})
            assert refused.status_code == 403
        assert (await registry.workers())[0].state == "running"
    finally:
        stop_process(worker)
