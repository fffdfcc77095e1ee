"""Serving the dashboard with uvicorn: used by ``jobmaster dashboard`` and by
``python -m jobmaster_dashboard`` (their options are in :mod:`jobmaster_dashboard.cli`)."""

from __future__ import annotations

import os
import sys

import uvicorn
from starlette.applications import Starlette

from jobmaster import Registry
from jobmaster_dashboard.app import create_app
from jobmaster_dashboard.auth import (
    PASSWORD_ENV,
    READ_ONLY_PREFIX,
    TOKEN_ENV,
    USER_ENV,
    AuthConfig,
    AuthError,
)

GRACEFUL_SHUTDOWN_SECONDS = 3
"""On SIGINT or SIGTERM, open live-update streams are closed after this long."""


def build_app(
    target: Registry | str, *, read_only: bool, root_path: str, authenticate: bool
) -> Starlette:
    """The app for the command line: credentials from ``JOBMASTER_DASHBOARD_*`` unless
    ``authenticate`` is False (then a warning on stderr). Raises :class:`AuthError`, in
    the command line's words, when there are none."""
    if not authenticate:
        can = "see every job" if read_only else "see and change every job"
        print(
            f"warning: --no-auth: the dashboard asks for no credentials; anyone who can "
            f"reach it can {can}. Use it only on a trusted network.",
            file=sys.stderr,
            flush=True,
        )
        return create_app(target, auth=None, read_only=read_only, root_path=root_path)
    if AuthConfig.from_env(os.environ, read_only=read_only) is None:
        variables = f"{TOKEN_ENV} (or {USER_ENV} and {PASSWORD_ENV})"
        if read_only:
            variables += f", or {READ_ONLY_PREFIX}TOKEN (or _USER and _PASSWORD)"
        raise AuthError(
            f"the dashboard needs credentials: set {variables}, "
            "or pass --no-auth to serve it without authentication (trusted networks only)"
        )
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
