"""The forms on a job's page: cancel, delete, and change a waiting job (time, priority,
arguments). Retrying is in actions.py, next to the other one-click actions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from jobmaster import (
    CancelOutcome,
    InvalidArguments,
    InvalidState,
    Job,
    JobmasterError,
    JobNotFound,
    UnknownJob,
)
from jobmaster_dashboard import forms
from jobmaster_dashboard.actions import protected
from jobmaster_dashboard.job_page import render_job
from jobmaster_dashboard.notices import notice_params
from jobmaster_dashboard.pages import registry_of
from jobmaster_dashboard.rendering import redirect, render


@dataclass(frozen=True)
class Changes:
    at: datetime | None
    update: dict[str, Any]
    """Keyword arguments of ``JobHandle.update``."""
    errors: dict[str, str]


def _refused(request: Request, exc: JobmasterError) -> Response:
    status = 404 if isinstance(exc, JobNotFound) else 409
    return render(request, "error.html", status_code=status, message=str(exc))


async def _cancel(request: Request, form: FormData) -> Response:
    queue, job_id = forms.text(form, "queue"), forms.text(form, "id")
    handle = registry_of(request).handle(job_id, queue)
    try:
        outcome = await handle.cancel("cancelled from the dashboard")
    except JobmasterError as exc:  # InvalidState: it had finished already
        return _refused(request, exc)
    done = "cancelled" if outcome is CancelOutcome.CANCELLED else "cancel-requested"
    return redirect(request, "/job", queue=queue, id=job_id, **notice_params(done))


async def _delete(request: Request, form: FormData) -> Response:
    queue, job_id = forms.text(form, "queue"), forms.text(form, "id")
    registry = registry_of(request)
    try:
        state = await registry.handle(job_id, queue).state()
        await registry.delete_job(job_id, queue)
    except JobmasterError as exc:  # InvalidState: it has not finished
        return _refused(request, exc)
    if forms.text(form, "back") == "failed":
        return redirect(request, "/failed", **notice_params("deleted"))
    return redirect(request, "/jobs", queue=queue, state=state.value, **notice_params("deleted"))


def _changes(job: Job, values: Mapping[str, str], can_change_arguments: bool) -> Changes:
    """What the change form asks for: a new time and/or new priority and arguments."""
    found = forms.FieldErrors()
    at = found.check(lambda: forms.when(values["run_at"], "run_at"))
    priority = found.check(lambda: forms.priority(values["priority"]))
    arguments = None
    if can_change_arguments and values["arguments"]:  # left empty: left as they are
        arguments = found.check(lambda: forms.json_object(values["arguments"], "arguments"))
    update: dict[str, Any] = {}
    if priority is not None and priority != job.priority:
        update["priority"] = priority
    if arguments is not None and arguments != job.arguments:
        update["arguments"] = arguments
    if not found.errors and not update and at is None:
        found.add("form", "Nothing to change: give a new time, priority or arguments.")
    return Changes(at, update, found.errors)


async def _change(request: Request, form: FormData) -> Response:
    """Move a waiting job to another time and/or change its priority and arguments."""
    queue, job_id = forms.text(form, "queue"), forms.text(form, "id")
    registry = registry_of(request)
    handle = registry.handle(job_id, queue)
    try:
        job = await handle.info()
    except JobmasterError as exc:
        return _refused(request, exc)
    values = {name: forms.text(form, name) for name in ("run_at", "priority", "arguments")}
    changes = _changes(job, values, job.name in registry.jobs)
    errors = dict(changes.errors)
    if errors:
        return await render_job(request, job, status_code=400, errors=errors, values=values)
    try:
        if changes.update:
            await handle.update(**changes.update)
        if changes.at is not None:
            await handle.reschedule(at=changes.at)
    except (InvalidArguments, UnknownJob) as exc:
        errors["arguments"] = str(exc)
        return await render_job(request, job, status_code=400, errors=errors, values=values)
    except InvalidState as exc:
        errors["form"] = str(exc)
        job = await handle.info()
        return await render_job(request, job, status_code=409, errors=errors, values=values)
    except JobmasterError as exc:
        return _refused(request, exc)
    return redirect(request, "/job", queue=queue, id=job_id, **notice_params("changed"))


cancel = protected(_cancel)
delete = protected(_delete)
change = protected(_change)
