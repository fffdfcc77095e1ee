"""The pages: overview, jobs, failed jobs, workers, schedules (GET only; one job's page is
in job_page.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from jobmaster import InvalidArguments, JobmasterError, JobNotFound, JobState, QueueStats, Registry
from jobmaster_dashboard.charts import Chart, throughput_chart
from jobmaster_dashboard.limits import read_limits, read_resource_waits
from jobmaster_dashboard.rendering import redirect, render

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
FAILED_PER_QUEUE = 50


def registry_of(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


async def queue_names(registry: Registry) -> list[str]:
    """The queues that have had a job, and those the application's jobs go to."""
    return sorted(set(await registry.known_queues()) | set(registry.queues()))


@dataclass(frozen=True)
class QueueView:
    """A queue on the overview: its statistics, chart, the workers that consume it, and
    whether it is paused."""

    stats: QueueStats
    chart: Chart
    workers: int
    paused: bool


async def overview(request: Request) -> Response:
    registry = registry_of(request)
    queues = await queue_names(registry)
    stats = await asyncio.gather(*(registry.queue_stats(q) for q in queues))
    workers = await registry.workers()
    paused = set(await registry.paused_queues()) if queues else set()
    views = [
        QueueView(
            s,
            throughput_chart(s),
            sum(1 for w in workers if s.queue in w.queues),
            s.queue in paused,
        )
        for s in stats
    ]
    limits = await read_limits(registry, queues)
    waits = await read_resource_waits(registry, queues)
    return render(
        request,
        "overview.html",
        queues=views,
        workers=workers,
        limits=limits,
        resource_waits=waits,
    )


def number(raw: str | None, default: int, lowest: int, highest: int) -> int:
    """An integer from a query string, kept between ``lowest`` and ``highest`` (``default``
    when missing or not a number)."""
    try:
        value = int(raw) if raw else default
    except ValueError:
        value = default
    return min(max(value, lowest), highest)


def _paging(params: Mapping[str, str]) -> tuple[int, int]:
    """``offset`` and ``limit`` (or the older ``page``) from a query string."""
    limit = number(params.get("limit"), PAGE_SIZE, 1, MAX_PAGE_SIZE)
    if "offset" not in params and "page" in params:
        page = number(params.get("page"), 1, 1, 1_000_000)
        return (page - 1) * limit, limit
    return number(params.get("offset"), 0, 0, 100_000_000), limit


async def jobs(request: Request) -> Response:
    registry = registry_of(request)
    params = request.query_params
    job_id = (params.get("id") or "").strip()
    if job_id:
        try:
            handle = await registry.find(job_id, params.get("queue") or None)
        except JobNotFound as exc:  # perhaps a group's id
            try:
                group = await registry.group(job_id, params.get("queue") or None)
            except InvalidArguments:
                return render(request, "error.html", status_code=404, message=str(exc))
            return redirect(request, "/group", queue=group.queue, id=group.id)
        except JobmasterError as exc:  # the id is in several queues
            return render(request, "error.html", status_code=404, message=str(exc))
        return redirect(request, "/job", queue=handle.queue, id=handle.id)
    queues = await registry.known_queues()
    queue = params.get("queue") or (queues[0] if queues else None)
    try:
        state = JobState(params.get("state") or JobState.QUEUED)
    except ValueError:
        return render(request, "error.html", status_code=400, message="unknown job state")
    offset, limit = _paging(params)
    name = params.get("name", "").strip() or None
    tag = params.get("tag", "").strip() or None
    summaries: list[Any] = []
    counts: dict[JobState, int] = {}
    if queue is not None:
        counts = await registry.count_jobs(queue)
        summaries = await registry.list_jobs(
            queue, state, offset=offset, limit=limit + 1, name=name, tag=tag
        )
    filters = {"queue": queue, "state": state.value, "name": name, "tag": tag, "limit": limit}
    return render(
        request,
        "jobs.html",
        queues=queues,
        queue=queue,
        state=state,
        name=name,
        tag=tag,
        job_names=sorted(registry.jobs),
        counts=counts,
        jobs=summaries[:limit],
        offset=offset,
        limit=limit,
        filters=filters,
        newer_offset=max(0, offset - limit) if offset > 0 else None,
        older_offset=offset + limit if len(summaries) > limit else None,
        total=counts.get(state, 0),
    )


async def failed(request: Request) -> Response:
    """The dead-letter view: failed jobs by queue (or of one queue), with bulk actions."""
    registry = registry_of(request)
    only = request.query_params.get("queue") or None
    queues = [only] if only else await registry.known_queues()
    totals = await asyncio.gather(*(registry.count_jobs(q) for q in queues))
    groups = []
    for queue, counts in zip(queues, totals, strict=True):
        total = counts.get(JobState.FAILED, 0)
        if total:
            listed = await registry.list_jobs(queue, JobState.FAILED, limit=FAILED_PER_QUEUE)
            groups.append((queue, total, listed))
    return render(request, "failed.html", groups=groups, only=only)


async def workers(request: Request) -> Response:
    found = await registry_of(request).workers()
    return render(request, "workers.html", workers=sorted(found, key=lambda w: w.id))
