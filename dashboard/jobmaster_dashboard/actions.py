"""The POST forms: log in and out, retry a job, pause, resume and trigger a schedule.

Every POST is checked for the CSRF token first, unless it came with the bearer token (a
script, not a browser); in read-only mode every action is refused with 403 (logging in
and out still works, they change no job).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from jobmaster import JobmasterError, JobNotFound, ScheduleNotFound
from jobmaster_dashboard.auth import (
    BEARER,
    SESSION_COOKIE,
    AuthConfig,
    client_address,
    log_failure,
    safe_next,
)
from jobmaster_dashboard.notices import notice_params
from jobmaster_dashboard.pages import registry_of
from jobmaster_dashboard.rendering import (
    check_csrf,
    prefix,
    redirect,
    remember_csrf,
    render,
    secure_cookies,
)
from jobmaster_dashboard.sessions import Sessions
from jobmaster_dashboard.throttle import LoginThrottle

Action = Callable[[Request, FormData], Awaitable[Response]]


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def protected(
    action: Action, *, changes_data: bool = True
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a form handler with the read-only and CSRF checks."""

    async def endpoint(request: Request) -> Response:
        if changes_data and request.app.state.read_only:
            return PlainTextResponse("the dashboard is read-only", status_code=403)
        form = await request.form()
        scripted = getattr(request.state, "authenticated_by", None) == BEARER
        if not scripted and not check_csrf(request, form):
            return PlainTextResponse(
                "missing or invalid CSRF token; reload the page and try again", status_code=403
            )
        return await action(request, form)

    return endpoint


async def login_form(request: Request) -> Response:
    auth: AuthConfig | None = request.app.state.auth
    return render(
        request,
        "login.html",
        next=safe_next(request.query_params.get("next")),
        uses_token=auth is not None and auth.token is not None,
        uses_basic=auth is not None and auth.uses_basic,
        error=None,
    )


def _login_page(
    request: Request, auth: AuthConfig, target: str, status: int, error: str
) -> Response:
    return render(
        request,
        "login.html",
        status_code=status,
        next=target,
        uses_token=auth.token is not None,
        uses_basic=auth.uses_basic,
        error=error,
    )


async def _login(request: Request, form: FormData) -> Response:
    auth: AuthConfig | None = request.app.state.auth
    target = safe_next(_field(form, "next"))
    if auth is None:
        return redirect(request, target)
    throttle: LoginThrottle = request.app.state.login_throttle
    token, user = _field(form, "token"), _field(form, "user")
    who = user or "token"
    wait = throttle.wait(client_address(request), who)
    if wait > 0:
        seconds = math.ceil(wait)
        page = _login_page(
            request, auth, target, 429, f"Too many failed logins: try again in {seconds} s."
        )
        page.headers["Retry-After"] = str(seconds)
        return page
    ok = (bool(token) and auth.check_token(token)) or (
        bool(user) and auth.check_basic(user, _field(form, "password"))
    )
    if not ok:
        log_failure(throttle, request, who, "form")
        return _login_page(request, auth, target, 401, "Wrong credentials.")
    throttle.succeeded(client_address(request), who)
    sessions: Sessions = request.app.state.sessions
    response = redirect(request, target)
    response.set_cookie(
        SESSION_COOKIE,
        await sessions.open(user if user and not token else "token"),
        path=prefix(request) or "/",
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
    )
    remember_csrf(request, response)
    return response


async def _logout(request: Request, form: FormData) -> Response:
    sessions: Sessions | None = request.app.state.sessions
    cookie = request.cookies.get(SESSION_COOKIE)
    if sessions is not None and cookie:
        await sessions.close(cookie)  # a copy of the cookie is refused from now on
    response = redirect(request, "/login")
    response.delete_cookie(SESSION_COOKIE, path=prefix(request) or "/")
    return response


async def _retry(request: Request, form: FormData) -> Response:
    queue, job_id = _field(form, "queue"), _field(form, "id")
    try:
        await registry_of(request).handle(job_id, queue).retry()
    except JobNotFound as exc:
        return render(request, "error.html", status_code=404, message=str(exc))
    except JobmasterError as exc:  # InvalidState: it is not failed or cancelled
        return render(request, "error.html", status_code=409, message=str(exc))
    if _field(form, "back") == "failed":
        return redirect(request, "/failed", **notice_params("retried"))
    return redirect(request, "/job", queue=queue, id=job_id, **notice_params("retried"))


def _schedule_action(kind: str) -> Action:
    async def act(request: Request, form: FormData) -> Response:
        registry = registry_of(request)
        name = _field(form, "name")
        operations = {
            "pause": registry.pause_schedule,
            "resume": registry.resume_schedule,
        }
        try:
            if kind == "trigger":
                handle = await registry.trigger_schedule(name)
                return redirect(request, "/job", queue=handle.queue, id=handle.id)
            await operations[kind](name)
        except ScheduleNotFound as exc:
            return render(request, "error.html", status_code=404, message=str(exc))
        except JobmasterError as exc:
            return render(request, "error.html", status_code=409, message=str(exc))
        return redirect(request, "/schedules")

    return act


login = protected(_login, changes_data=False)
logout = protected(_logout, changes_data=False)
retry = protected(_retry)
pause_schedule = protected(_schedule_action("pause"))
resume_schedule = protected(_schedule_action("resume"))
trigger_schedule = protected(_schedule_action("trigger"))
