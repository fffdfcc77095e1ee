"""The schedules page with its forms: add a schedule at run time, delete one.

Pausing, resuming and running a schedule now are in actions.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from jobmaster import (
    ConfigError,
    InvalidArguments,
    JobmasterError,
    ScheduleExists,
    ScheduleNotFound,
    UnknownJob,
)
from jobmaster_dashboard import forms
from jobmaster_dashboard.actions import protected
from jobmaster_dashboard.notices import notice_params
from jobmaster_dashboard.pages import registry_of
from jobmaster_dashboard.rendering import redirect, render

FIELDS = ("name", "job", "cron", "every", "args", "queue", "tz", "catch_up")
CATCH_UP = ("latest", "skip", "all")
_MESSAGE_FIELDS = (
    ("schedule name", "name"),
    ("timezone", "tz"),
    ("cron", "cron"),
    ("every=", "every"),
    ("queue", "queue"),
    ("catch_up", "catch_up"),
)
"""Which field a ConfigError of ``add_schedule`` is about, from its message."""


async def _render(
    request: Request,
    *,
    status_code: int = 200,
    errors: Mapping[str, str] | None = None,
    values: Mapping[str, str] | None = None,
) -> Response:
    registry = registry_of(request)
    defaults = {field: "" for field in FIELDS} | {"args": "{}", "tz": "UTC", "catch_up": "latest"}
    return render(
        request,
        "schedules.html",
        status_code=status_code,
        schedules=await registry.schedules(),
        job_names=sorted(registry.jobs),
        catch_up_policies=CATCH_UP,
        errors=errors or {},
        values={**defaults, **(values or {})},
    )


async def schedules(request: Request) -> Response:
    return await _render(request)


def _field_of(exc: ConfigError) -> str:
    text = str(exc)
    return next((field for words, field in _MESSAGE_FIELDS if words in text), "form")


def _read(values: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The keyword arguments of ``add_schedule`` (but the name and job) and the errors."""
    found = forms.FieldErrors()
    if not values["name"]:
        found.add("name", "give the schedule a name")
    if not values["job"]:
        found.add("job", "choose a job")
    if bool(values["cron"]) == bool(values["every"]):
        found.add("cron", "give a cron expression or an interval in seconds (one of them)")
    every = found.check(lambda: forms.seconds(values["every"], "every", minimum=1))
    args = found.check(lambda: forms.json_object(values["args"], "args"))
    if values["catch_up"] not in CATCH_UP:
        found.add("catch_up", f"choose one of {', '.join(CATCH_UP)}")
    options = {
        "cron": values["cron"] or None,
        "every": every,
        "args": args,
        "tz": values["tz"] or "UTC",
        "catch_up": values["catch_up"],
        "queue": values["queue"] or None,
    }
    return options, found.errors


async def _add(request: Request, form: FormData) -> Response:
    registry = registry_of(request)
    if not registry.jobs:
        return PlainTextResponse(
            "this dashboard knows no job names: start it with the application's registry",
            status_code=400,
        )
    values = {field: forms.text(form, field) for field in FIELDS}
    options, errors = _read(values)
    if not errors:
        try:
            await registry.add_schedule(values["name"], values["job"], **options)
        except ScheduleExists as exc:
            errors["name"] = str(exc)
        except UnknownJob as exc:
            errors["job"] = str(exc)
        except InvalidArguments as exc:
            errors["args"] = str(exc)
        except ConfigError as exc:
            errors[_field_of(exc)] = str(exc)
    if errors:
        return await _render(request, status_code=400, errors=errors, values=values)
    return redirect(request, "/schedules", **notice_params("schedule-added"))


async def _delete(request: Request, form: FormData) -> Response:
    try:
        await registry_of(request).delete_schedule(forms.text(form, "name"))
    except ScheduleNotFound as exc:
        return render(request, "error.html", status_code=404, message=str(exc))
    except JobmasterError as exc:
        return render(request, "error.html", status_code=409, message=str(exc))
    return redirect(request, "/schedules", **notice_params("schedule-deleted"))


add = protected(_add)
delete = protected(_delete)
