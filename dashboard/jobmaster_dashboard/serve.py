"""Serving the dashboard with uvicorn: used by ``jobmaster dashboard`` and by
``python -m jobmaster_dashboard`` (whose options live with the ``jobmaster`` command)."""

from __future__ import annotations

import uvicorn
from starlette.applications import Starlette

from jobmaster import Registry
from jobmaster_dashboard.app import create_app

GRACEFUL_SHUTDOWN_SECONDS = 3
"""On SIGINT or SIGTERM, open live-update streams are closed after this long."""


def build_app(
    target: Registry | str, *, read_only: bool, root_path: str, authenticate: bool
) -> Starlette:
    """The app for the command line: credentials from ``JOBMASTER_DASHBOARD_*`` unless
    ``authenticate`` is False. Raises :class:`AuthError` when there are none."""
    if not authenticate:
        return create_app(target, auth=None, read_only=read_only, root_path=root_path)
    return create_app(target, read_only=read_only, root_path=root_path)


def serve(app: Starlette, host: str, port: int) -> None:
    """Run uvicorn until SIGINT or SIGTERM."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        proxy_headers=True,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
