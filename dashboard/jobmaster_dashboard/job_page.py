"""One job's page: its facts, dependencies and group, timeline, attempts with logs, and the
forms that act on it.

The part that changes while the job runs (everything below the title and the forms) is
also served alone, as a fragment the page fetches again when the job changes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from jobmaster import AttemptOutcome, Job, JobmasterError, JobNotFound
from jobmaster.store.types import HeldForResources
from jobmaster_dashboard.limits import needs_text, resource_hold
from jobmaster_dashboard.pages import registry_of
from jobmaster_dashboard.relations import read_relations
from jobmaster_dashboard.rendering import render

RETRYABLE = ("failed", "cancelled")
CANCELLABLE = ("scheduled", "queued", "active", "blocked")
CHANGEABLE = ("scheduled", "queued")
DELETABLE = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class Moment:
    """One line of a job's timeline."""

    at: datetime
    what: str
    kind: str
    """A state or an attempt outcome, for its colour."""


def timeline(job: Job) -> list[Moment]:
    """What happened to the job, in order: created, due, each attempt, finished."""
    moments = [Moment(job.created_at, "created", "queued")]
    if job.scheduled_for is not None:
        moments.append(Moment(job.scheduled_for, "scheduled for", "scheduled"))
    for attempt in job.attempts:
        where = f"{attempt.worker_id} ({attempt.hostname}, pid {attempt.pid})"
        moments.append(
            Moment(attempt.started_at, f"attempt {attempt.number} started on {where}", "active")
        )
        if attempt.finished_at is not None and attempt.outcome is not None:
            ended = f"attempt {attempt.number} ended {attempt.outcome.value}"
            if attempt.outcome is AttemptOutcome.RATE_LIMITED:
                ended += " (sent back for later, not a try)"
            moments.append(Moment(attempt.finished_at, ended, attempt.outcome.value))
    if job.finished_at is not None:
        moments.append(Moment(job.finished_at, f"finished {job.state.value}", job.state.value))
    return sorted(moments, key=lambda m: m.at)


def form_values(job: Job) -> dict[str, str]:
    """The change form filled with the job as it is."""
    arguments = json.dumps(job.arguments, indent=2, ensure_ascii=False, sort_keys=True)
    return {"run_at": "", "priority": str(job.priority), "arguments": arguments}


async def render_job(
    request: Request,
    job: Job,
    *,
    status_code: int = 200,
    errors: Mapping[str, str] | None = None,
    values: Mapping[str, str] | None = None,
    hold: HeldForResources | None = None,
) -> Response:
    """The job page; after a refused change, with the messages and the user's input."""
    return render(
        request,
        "job.html",
        status_code=status_code,
        job=job,
        timeline=timeline(job),
        relations=await read_relations(registry_of(request), job),
        **_hold_context(hold),
        errors=errors or {},
        values=values or form_values(job),
        can_change_arguments=job.name in registry_of(request).jobs,
        RETRYABLE=RETRYABLE,
        CANCELLABLE=CANCELLABLE,
        CHANGEABLE=CHANGEABLE,
        DELETABLE=DELETABLE,
    )


async def _read_job(request: Request) -> Job | Response:
    queue = request.query_params.get("queue") or None
    job_id = request.query_params.get("id", "")
    try:
        return await registry_of(request).get_job(job_id, queue)
    except JobNotFound as exc:
        return render(request, "error.html", status_code=404, message=str(exc))
    except JobmasterError as exc:  # the id is in several queues
        return render(request, "error.html", status_code=400, message=str(exc))


def _hold_context(hold: HeldForResources | None) -> dict[str, Any]:
    """What the page says of a job held for resources."""
    if hold is None:
        return {"needs": None, "fits": True}
    return {"needs": needs_text(hold.needs), "fits": hold.fits_a_live_worker}


async def _hold(request: Request, job: Job) -> HeldForResources | None:
    if job.held_back != "resources":
        return None
    return await resource_hold(registry_of(request), job.queue, job.id)


async def job(request: Request) -> Response:
    found = await _read_job(request)
    if isinstance(found, Response):
        return found
    return await render_job(request, found, hold=await _hold(request, found))


async def job_live(request: Request) -> Response:
    """``GET /job/live``: the changing part of the job page, alone."""
    found = await _read_job(request)
    if isinstance(found, Response):
        return found
    return render(
        request,
        "job_live.html",
        job=found,
        timeline=timeline(found),
        relations=await read_relations(registry_of(request), found),
        **_hold_context(await _hold(request, found)),
    )
