"""create_app: the dashboard as a Starlette application, its state on ``app.state``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import redis.exceptions
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from jobmaster import RedisUnavailable, Registry
from jobmaster_dashboard import (
    actions,
    bulk,
    enqueue,
    group_actions,
    group_pages,
    job_actions,
    job_page,
    live,
    metrics,
    pages,
    queue_actions,
    schedule_forms,
    worker_actions,
)
from jobmaster_dashboard.auth import FROM_ENV, AuthConfig, AuthMiddleware, _FromEnv, resolve_auth
from jobmaster_dashboard.headers import SecurityHeadersMiddleware
from jobmaster_dashboard.rendering import HERE, render
from jobmaster_dashboard.sessions import Sessions, SessionSettings
from jobmaster_dashboard.throttle import LoginThrottle


async def _redis_unavailable(request: Request, exc: Exception) -> Response:
    # Some inspection calls raise redis-py's own errors rather than RedisUnavailable.
    message = str(exc) if isinstance(exc, RedisUnavailable) else f"Redis did not answer ({exc})"
    return render(request, "error.html", status_code=503, message=message)


def create_app(
    registry_or_redis_url: Registry | str,
    *,
    auth: AuthConfig | str | tuple[str, str] | _FromEnv | None = FROM_ENV,
    read_only: bool = False,
    root_path: str = "",
    session_ttl: float | None = None,
    secure_cookies: bool | None = None,
    environ: Mapping[str, str] | None = None,
) -> Starlette:
    """The dashboard for a registry (or for the Redis at a URL, default namespace).

    Args:
        registry_or_redis_url: the application's :class:`jobmaster.Registry` (needed to
            show its job names), or a Redis URL.
        auth: a token (``"..."``), HTTP basic credentials (``(user, password)``), an
            :class:`AuthConfig`, or ``None`` to turn authentication off. By default they
            come from ``JOBMASTER_DASHBOARD_TOKEN`` or ``JOBMASTER_DASHBOARD_USER`` and
            ``JOBMASTER_DASHBOARD_PASSWORD`` (read-only: ``JOBMASTER_DASHBOARD_READ_ONLY_*``
            first, when set); with none set, this raises ``AuthError``.
        read_only: hide every action and refuse every POST that would change data (403).
        root_path: the path prefix the dashboard is served under, for its links, when the
            server does not pass it as the ASGI ``root_path`` (``Mount`` does).
        session_ttl: seconds a login session lives without a request (default
            ``JOBMASTER_DASHBOARD_SESSION_TTL``, else 12 hours); logging out ends it.
        secure_cookies: mark the cookies ``Secure`` even on plain HTTP requests (as when a
            proxy terminates TLS without saying so); default
            ``JOBMASTER_DASHBOARD_SECURE_COOKIES``. Over HTTPS they always are.
        environ: where to read the ``JOBMASTER_*`` variables (default: ``os.environ``).

    The app can be mounted in another ASGI app: ``Mount("/jobs", app=create_app(...))``.
    """
    env = os.environ if environ is None else environ
    resolved = resolve_auth(auth, env, read_only=read_only)
    session_settings = SessionSettings.load(env, session_ttl, secure_cookies)
    if isinstance(registry_or_redis_url, Registry):
        registry, owned = registry_or_redis_url, False
    else:
        registry, owned = Registry(registry_or_redis_url, environ=environ), True
    prefix = root_path.rstrip("/")
    hub = live.EventHub(registry)
    sessions = Sessions(registry, resolved, session_settings) if resolved is not None else None
    throttle = LoginThrottle()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:  # the connections this event loop opened
            await hub.close()
            await registry.aclose()
            if owned:
                registry.close()

    routes = [
        Route("/", pages.overview, name="overview"),
        Route("/queues/pause", queue_actions.pause, methods=["POST"]),
        Route("/queues/resume", queue_actions.resume, methods=["POST"]),
        Route("/jobs", pages.jobs, name="jobs"),
        Route("/job", job_page.job, name="job"),
        Route("/job/live", job_page.job_live, name="job_live"),
        Route("/job/retry", actions.retry, methods=["POST"], name="retry"),
        Route("/job/cancel", job_actions.cancel, methods=["POST"]),
        Route("/job/delete", job_actions.delete, methods=["POST"]),
        Route("/job/change", job_actions.change, methods=["POST"]),
        Route("/groups", group_pages.groups, name="groups"),
        Route("/group", group_pages.group, name="group"),
        Route("/group/cancel", group_actions.cancel, methods=["POST"]),
        Route("/group/retry", group_actions.retry, methods=["POST"]),
        Route("/enqueue", enqueue.enqueue_form, name="enqueue_form"),
        Route("/enqueue", enqueue.enqueue, methods=["POST"], name="enqueue"),
        Route("/events", live.events, name="events"),
        Route("/failed", pages.failed, name="failed"),
        Route("/failed/retry", bulk.retry, methods=["POST"]),
        Route("/failed/delete", bulk.delete, methods=["POST"]),
        Route("/workers", pages.workers, name="workers"),
        Route("/workers/pause", worker_actions.pause, methods=["POST"]),
        Route("/workers/resume", worker_actions.resume, methods=["POST"]),
        Route("/workers/drain", worker_actions.drain, methods=["POST"]),
        Route("/workers/stop", worker_actions.stop, methods=["POST"]),
        Route("/metrics", metrics.metrics, name="metrics"),
        Route("/schedules", schedule_forms.schedules, name="schedules"),
        Route("/schedules/add", schedule_forms.add, methods=["POST"]),
        Route("/schedules/delete", schedule_forms.delete, methods=["POST"]),
        Route("/schedules/pause", actions.pause_schedule, methods=["POST"]),
        Route("/schedules/resume", actions.resume_schedule, methods=["POST"]),
        Route("/schedules/trigger", actions.trigger_schedule, methods=["POST"]),
        Route("/login", actions.login_form, name="login_form"),
        Route("/login", actions.login, methods=["POST"], name="login"),
        Route("/logout", actions.logout, methods=["POST"], name="logout"),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeadersMiddleware),
            Middleware(
                AuthMiddleware, auth=resolved, prefix=prefix, sessions=sessions, throttle=throttle
            ),
        ],
        lifespan=lifespan,
        exception_handlers={
            RedisUnavailable: _redis_unavailable,
            redis.exceptions.ConnectionError: _redis_unavailable,
            redis.exceptions.TimeoutError: _redis_unavailable,
        },
    )
    app.state.registry = registry
    app.state.auth = resolved
    app.state.read_only = read_only
    app.state.root_path = prefix
    app.state.event_hub = hub
    app.state.sessions = sessions
    app.state.session_settings = session_settings
    app.state.login_throttle = throttle
    return app
