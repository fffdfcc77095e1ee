"""The pages: overview, jobs, one job, failed jobs, workers, schedules (GET only)."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from jobmaster import JobmasterError, JobNotFound, JobState, Registry
from jobmaster_dashboard.rendering import redirect, render

PAGE_SIZE = 50
FAILED_PER_QUEUE = 20


def registry_of(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


async def overview(request: Request) -> Response:
    registry = registry_of(request)
    queues = await registry.known_queues()
    counts = await asyncio.gather(*(registry.count_jobs(q) for q in queues))
    workers = await registry.workers()
    return render(
        request,
        "overview.html",
        queues=list(zip(queues, counts, strict=True)),
        workers=workers,
    )


def _page_number(raw: str | None) -> int:
    try:
        return max(1, int(raw or "1"))
    except ValueError:
        return 1


async def jobs(request: Request) -> Response:
    registry = registry_of(request)
    params = request.query_params
    job_id = (params.get("id") or "").strip()
    if job_id:
        try:
            handle = await registry.find(job_id, params.get("queue") or None)
        except JobmasterError as exc:  # not found, or the id is in several queues
            return render(request, "error.html", status_code=404, message=str(exc))
        return redirect(request, "/job", queue=handle.queue, id=handle.id)
    queues = await registry.known_queues()
    queue = params.get("queue") or (queues[0] if queues else None)
    try:
        state = JobState(params.get("state") or JobState.QUEUED)
    except ValueError:
        return render(request, "error.html", status_code=400, message="unknown job state")
    page = _page_number(params.get("page"))
    summaries: list[Any] = []
    counts: dict[JobState, int] = {}
    if queue is not None:
        counts = await registry.count_jobs(queue)
        summaries = await registry.list_jobs(
            queue, state, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE
        )
    total = counts.get(state, 0)
    return render(
        request,
        "jobs.html",
        queues=queues,
        queue=queue,
        state=state,
        counts=counts,
        jobs=summaries,
        page=page,
        has_next=page * PAGE_SIZE < total,
        total=total,
    )


async def job(request: Request) -> Response:
    registry = registry_of(request)
    queue = request.query_params.get("queue") or None
    job_id = request.query_params.get("id", "")
    try:
        found = await registry.get_job(job_id, queue)
    except JobNotFound as exc:
        return render(request, "error.html", status_code=404, message=str(exc))
    except JobmasterError as exc:
        return render(request, "error.html", status_code=400, message=str(exc))
    return render(request, "job.html", job=found)


async def failed(request: Request) -> Response:
    registry = registry_of(request)
    groups = []
    for queue in await registry.known_queues():
        total = (await registry.count_jobs(queue)).get(JobState.FAILED, 0)
        if total:
            listed = await registry.list_jobs(queue, JobState.FAILED, limit=FAILED_PER_QUEUE)
            groups.append((queue, total, listed))
    return render(request, "failed.html", groups=groups)


async def workers(request: Request) -> Response:
    found = await registry_of(request).workers()
    return render(request, "workers.html", workers=sorted(found, key=lambda w: w.id))


async def schedules(request: Request) -> Response:
    found = await registry_of(request).schedules()
    return render(request, "schedules.html", schedules=found)
