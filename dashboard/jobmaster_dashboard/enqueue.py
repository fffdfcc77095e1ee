"""The enqueue form: a registered job, its arguments as JSON, and the enqueue options.

The arguments are validated by the job's own model through ``registry.enqueue``; a
refused field is shown again with its message and nothing is enqueued.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from jobmaster import InvalidArguments, JobHandler, UnknownJob
from jobmaster_dashboard import forms
from jobmaster_dashboard.actions import protected
from jobmaster_dashboard.pages import registry_of
from jobmaster_dashboard.rendering import redirect, render

FIELDS = ("job", "arguments", "queue", "priority", "delay", "tags")


def _render(
    request: Request,
    *,
    status_code: int = 200,
    errors: Mapping[str, str] | None = None,
    values: Mapping[str, str] | None = None,
) -> Response:
    jobs = registry_of(request).jobs
    chosen = dict(values or {})
    chosen.setdefault("job", request.query_params.get("job", ""))
    defaults = {"arguments": "{}", "queue": "", "priority": "", "delay": "", "tags": ""}
    return render(
        request,
        "enqueue.html",
        status_code=status_code,
        jobs=[jobs[name] for name in sorted(jobs)],
        errors=errors or {},
        values={**defaults, **chosen},
    )


async def enqueue_form(request: Request) -> Response:
    return _render(request)


def _checked(handler: JobHandler[Any, Any], field: str, value: Any) -> Any:
    """``value`` if the job's options accept it for ``field`` (None stays None)."""
    if value is None:
        return None
    try:
        handler.options(**{field: value})
    except InvalidArguments as exc:
        raise forms.FieldError(field, str(exc)) from None
    return value


def _options(
    handler: JobHandler[Any, Any], values: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The enqueue options, each checked on its own so that an error names its field."""
    found = forms.FieldErrors()
    given = {
        "priority": found.check(lambda: forms.priority(values["priority"])),
        "delay": found.check(
            lambda: _checked(handler, "delay", forms.seconds(values["delay"], "delay"))
        ),
        "queue": found.check(lambda: _checked(handler, "queue", values["queue"] or None)),
        "tags": found.check(lambda: _checked(handler, "tags", forms.tags(values["tags"]) or None)),
    }
    return {k: v for k, v in given.items() if v is not None}, found.errors


async def _enqueue(request: Request, form: FormData) -> Response:
    registry = registry_of(request)
    if not registry.jobs:
        return PlainTextResponse(
            "this dashboard knows no job names: start it with the application's registry",
            status_code=400,
        )
    values = {name: forms.text(form, name) for name in FIELDS}
    errors: dict[str, str] = {}
    handler = None
    try:
        handler = registry.get(values["job"])
    except UnknownJob as exc:
        errors["job"] = "choose a job" if not values["job"] else str(exc)
    arguments: dict[str, Any] = {}
    try:
        arguments = forms.json_object(values["arguments"], "arguments")
    except forms.FieldError as exc:
        errors[exc.field] = exc.message
    options: dict[str, Any] = {}
    if handler is not None:
        options, refused = _options(handler, values)
        errors.update(refused)
    if errors or handler is None:
        return _render(request, status_code=400, errors=errors, values=values)
    try:
        handle = await registry.enqueue(handler.name, arguments, **options)
    except InvalidArguments as exc:  # the job's model refused the arguments
        errors["arguments"] = str(exc)
        return _render(request, status_code=400, errors=errors, values=values)
    return redirect(request, "/job", queue=handle.queue, id=handle.id)


enqueue = protected(_enqueue)
