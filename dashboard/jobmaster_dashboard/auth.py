"""Who may use the dashboard: a token or HTTP basic credentials, and the session cookie.

A request is let in when it carries ``Authorization: Bearer <token>``, HTTP basic
credentials, or the cookie of a live session that the login form opened (see
:mod:`.sessions`). Wrong credentials, in the form or in the header, are counted per
client address and per user, and slowed down (see :mod:`.throttle`) and logged.
A request let in by its bearer token is marked so, so that it may POST without the CSRF
field (a browser never adds that header by itself, unlike basic credentials or cookies).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import math
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlencode

import redis.exceptions
import structlog
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from jobmaster import RedisUnavailable
from jobmaster_dashboard.throttle import LoginThrottle

log = structlog.get_logger("jobmaster_dashboard.auth")

SESSION_COOKIE = "jobmaster_session"
TOKEN_ENV = "JOBMASTER_DASHBOARD_TOKEN"
USER_ENV = "JOBMASTER_DASHBOARD_USER"
PASSWORD_ENV = "JOBMASTER_DASHBOARD_PASSWORD"
READ_ONLY_PREFIX = "JOBMASTER_DASHBOARD_READ_ONLY_"
"""A read-only dashboard reads ``..._READ_ONLY_TOKEN`` (``_USER``, ``_PASSWORD``) when set."""
PUBLIC_PATHS = ("/login", "/static/")
"""Paths served without credentials (the login form and the stylesheet)."""
BEARER = "bearer"
"""``request.state.authenticated_by`` of a request let in by its bearer token."""


class _FromEnv(enum.Enum):
    FROM_ENV = "from-env"


FROM_ENV = _FromEnv.FROM_ENV
"""``create_app``'s default for ``auth``: read the credentials from the environment."""


class AuthError(ValueError):
    """The dashboard's authentication is missing or badly configured."""


@dataclass(frozen=True)
class AuthConfig:
    """The credentials the dashboard accepts: a token, a user and password, or both."""

    token: str | None = None
    user: str | None = None
    password: str | None = None

    def __post_init__(self) -> None:
        if (self.user is None) != (self.password is None):
            raise AuthError("basic authentication needs both a user and a password")
        if self.token is None and self.user is None:
            raise AuthError("AuthConfig needs a token, or a user and a password")
        if self.token == "" or self.user == "" or self.password == "":
            raise AuthError("dashboard credentials must not be empty")

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, read_only: bool = False) -> AuthConfig | None:
        """From ``JOBMASTER_DASHBOARD_TOKEN`` (or ``_USER`` and ``_PASSWORD``); a read-only
        dashboard takes ``JOBMASTER_DASHBOARD_READ_ONLY_TOKEN`` (``_USER``, ``_PASSWORD``)
        instead when any of them is set. None when none is set."""
        names = [TOKEN_ENV, USER_ENV, PASSWORD_ENV]
        if read_only:
            own = [READ_ONLY_PREFIX + name.rsplit("_", 1)[1] for name in names]
            if any(environ.get(name) for name in own):
                names = own
        token, user, password = (environ.get(name) or None for name in names)
        if token is None and user is None and password is None:
            return None
        if (user is None) != (password is None):
            raise AuthError(f"set both {names[1]} and {names[2]}, or neither")
        return cls(token=token, user=user, password=password)

    @property
    def uses_basic(self) -> bool:
        return self.user is not None

    def check_token(self, token: str) -> bool:
        return self.token is not None and hmac.compare_digest(token.encode(), self.token.encode())

    def check_basic(self, user: str, password: str) -> bool:
        if self.user is None or self.password is None:
            return False
        user_ok = hmac.compare_digest(user.encode(), self.user.encode())
        password_ok = hmac.compare_digest(password.encode(), self.password.encode())
        return user_ok and password_ok

    def _session_key(self) -> bytes:
        material = f"{self.token or ''}\0{self.user or ''}\0{self.password or ''}"
        return hashlib.sha256(b"jobmaster-dashboard-session\0" + material.encode()).digest()

    def new_session(self) -> str:
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self._sign(nonce)}"

    def check_session(self, value: str) -> bool:
        nonce, _, signature = value.partition(".")
        return bool(nonce) and hmac.compare_digest(signature, self._sign(nonce))

    def _sign(self, nonce: str) -> str:
        return hmac.new(self._session_key(), nonce.encode(), hashlib.sha256).hexdigest()


def resolve_auth(
    auth: AuthConfig | str | tuple[str, str] | _FromEnv | None,
    environ: Mapping[str, str] | None = None,
    *,
    read_only: bool = False,
) -> AuthConfig | None:
    """The credentials to enforce (None: authentication explicitly turned off)."""
    if auth is None:
        return None
    if isinstance(auth, AuthConfig):
        return auth
    if isinstance(auth, str):
        return AuthConfig(token=auth)
    if isinstance(auth, tuple):
        user, password = auth
        return AuthConfig(user=user, password=password)
    config = AuthConfig.from_env(os.environ if environ is None else environ, read_only=read_only)
    if config is None:
        raise AuthError(
            "the dashboard needs credentials: pass auth='<token>' or auth=(user, password), "
            f"or set {TOKEN_ENV} (or {USER_ENV} and {PASSWORD_ENV}); "
            "pass auth=None to run it without authentication"
        )
    return config


def route_path(scope: Scope) -> str:
    """The request's path inside the dashboard (without the prefix it is mounted at)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def client_address(conn: HTTPConnection) -> str:
    """The client's address (behind a trusted proxy, the one it forwarded)."""
    return conn.client.host if conn.client is not None else "unknown"


def throttled(wait: float) -> PlainTextResponse:
    seconds = math.ceil(wait)
    return PlainTextResponse(
        f"too many failed logins; try again in {seconds} s",
        status_code=429,
        headers={"Retry-After": str(seconds)},
    )


def log_failure(throttle: LoginThrottle, conn: HTTPConnection, user: str, via: str) -> None:
    """Count a failed login and log it (never with what was typed as the secret)."""
    address = client_address(conn)
    failures = throttle.failed(address, user)
    log.warning("dashboard login failed", address=address, user=user, via=via, failures=failures)


def _header_credentials(header: str) -> tuple[str, str, str] | None:
    """``(scheme, user, secret)`` from an Authorization header (user ``token`` for a
    bearer token); None when the header is neither."""
    scheme, _, credentials = header.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == BEARER and credentials:
        return BEARER, "token", credentials
    if scheme.lower() == "basic" and credentials:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return "basic", "", ""
        user, sep, password = decoded.partition(":")
        return ("basic", user, password) if sep else ("basic", "", "")
    return None


class SessionCheck(Protocol):
    """What the middleware asks of the login sessions (:class:`.sessions.Sessions`)."""

    async def check(self, cookie: str) -> bool:
        """Whether the cookie belongs to a live session."""
        ...


class AuthMiddleware:
    """Lets authenticated requests through; sends browsers to the login form, others a 401
    (a 429 to an address or user that failed too often)."""

    def __init__(
        self,
        app: ASGIApp,
        auth: AuthConfig | None,
        prefix: str,
        sessions: SessionCheck | None,
        throttle: LoginThrottle,
    ) -> None:
        self.app = app
        self.auth = auth
        self.prefix = prefix
        self.sessions = sessions
        self.throttle = throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.auth is None or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        conn = HTTPConnection(scope)
        if path.startswith(PUBLIC_PATHS):
            await self.app(scope, receive, send)
            return
        try:
            verdict = await self._verdict(conn)
        except (RedisUnavailable, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            verdict = PlainTextResponse("Redis did not answer; try again", status_code=503)
        if verdict is None:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await verdict(scope, receive, send)

    async def _verdict(self, conn: HTTPConnection) -> Response | None:
        """None to let the request in, else the response that refuses it."""
        assert self.auth is not None
        header = _header_credentials(conn.headers.get("authorization", ""))
        if header is not None:
            scheme, user, secret = header
            address = client_address(conn)
            wait = self.throttle.wait(address, user)
            if wait > 0:
                return throttled(wait)
            if scheme == BEARER:
                ok = self.auth.check_token(secret)
            else:
                ok = bool(user) and self.auth.check_basic(user, secret)
            if ok:
                self.throttle.succeeded(address, user)
                conn.state.authenticated_by = scheme
                return None
            log_failure(self.throttle, conn, user, scheme)
            return self._refusal(conn)
        session = conn.cookies.get(SESSION_COOKIE)
        if session is not None and self.sessions is not None and await self.sessions.check(session):
            return None
        return self._refusal(conn)

    def _refusal(self, conn: HTTPConnection) -> Response:
        scope = conn.scope
        path = route_path(scope)
        wants_html = "text/html" in conn.headers.get("accept", "")
        if scope.get("method") == "GET" and wants_html:
            root = self.prefix or scope.get("root_path", "")
            target = path + (f"?{conn.url.query}" if conn.url.query else "")
            query = urlencode({"next": target})
            return RedirectResponse(f"{root}/login?{query}", status_code=303)
        assert self.auth is not None
        challenge = 'Basic realm="jobmaster"' if self.auth.uses_basic else "Bearer"
        return PlainTextResponse(
            "authentication required", status_code=401, headers={"WWW-Authenticate": challenge}
        )


def safe_next(target: str | None) -> str:
    """A post-login destination inside the dashboard (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
