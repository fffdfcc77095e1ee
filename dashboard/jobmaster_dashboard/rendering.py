"""Templates (autoescaped), links inside the dashboard, and the CSRF token of each browser.

CSRF protection is the double-submit pattern: a random token in an HTTP-only cookie, the
same token in a hidden field of every form, and every POST checked for both matching.
"""

from __future__ import annotations

import hmac
import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from jobmaster import JobState
from jobmaster_dashboard.notices import read_notice

CSRF_COOKIE = "jobmaster_csrf"
CSRF_FIELD = "csrf_token"
HERE = Path(__file__).resolve().parent


def _pretty(value: Any) -> str:
    """JSON for people: indented, non-ASCII kept; escaped by the template like any text."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=True)


def _compact(value: Any) -> str:
    """JSON on one line, for table cells; escaped by the template like any text."""
    return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)


def _when(value: datetime | float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _age(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago: ``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``."""
    if value is None:
        return "-"
    seconds = max(0, int(((now or datetime.now(UTC)) - value).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if minutes < 60:
        return f"{minutes} min"
    if hours < 24:
        return f"{hours} h {minutes % 60} min"
    return f"{days} d {hours % 24} h"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["pretty"] = _pretty
    env.filters["compact"] = _compact
    env.filters["when"] = _when
    env.filters["age"] = _age
    env.globals["STATES"] = list(JobState)
    return env


TEMPLATES = _environment()


def prefix(request: Request) -> str:
    """Where the dashboard is mounted: ``root_path`` of create_app, else the server's."""
    configured: str = request.app.state.root_path
    return configured or str(request.scope.get("root_path", ""))


def link(request: Request, path: str, **params: Any) -> str:
    """A URL inside the dashboard; parameters are URL-encoded (None ones left out)."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return prefix(request) + path + (f"?{query}" if query else "")


def csrf_token(request: Request) -> str:
    token = request.cookies.get(CSRF_COOKIE)
    if not token:
        token = getattr(request.state, "new_csrf", None) or secrets.token_urlsafe(32)
        request.state.new_csrf = token
    return token


def check_csrf(request: Request, form: FormData) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    field = form.get(CSRF_FIELD)
    return bool(cookie) and isinstance(field, str) and hmac.compare_digest(cookie, field)


def secure_cookies(request: Request) -> bool:
    """Whether cookies get ``Secure``: over HTTPS, or always when the app was told so."""
    return request.url.scheme == "https" or request.app.state.session_settings.secure_cookies


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page; sets the CSRF cookie when this browser has none yet."""
    state = request.app.state
    token = csrf_token(request)

    def url(path: str, **params: Any) -> str:
        return link(request, path, **params)

    context.setdefault("notice", read_notice(request))
    page = TEMPLATES.get_template(template).render(
        url=url,
        csrf_field=CSRF_FIELD,
        csrf_token=token,
        read_only=state.read_only,
        auth_enabled=state.auth is not None,
        path=request.url.path,
        **context,
    )
    response = HTMLResponse(page, status_code=status_code)
    remember_csrf(request, response)
    return response


def remember_csrf(request: Request, response: HTMLResponse | RedirectResponse) -> None:
    new = getattr(request.state, "new_csrf", None)
    if new:
        response.set_cookie(
            CSRF_COOKIE,
            new,
            path=prefix(request) or "/",
            httponly=True,
            samesite="strict",
            secure=secure_cookies(request),
        )


def redirect(request: Request, path: str, **params: Any) -> RedirectResponse:
    return RedirectResponse(link(request, path, **params), status_code=303)
