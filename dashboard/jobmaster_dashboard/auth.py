"""Who may use the dashboard: a token or HTTP basic credentials, and the session cookie.

A request is let in when it carries ``Authorization: Bearer <token>``, HTTP basic
credentials, or the session cookie that the login form sets. The cookie holds a random
nonce and its HMAC under a key derived from the configured credentials, so changing the
credentials logs every browser out and nothing is stored on the server.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

SESSION_COOKIE = "jobmaster_session"
TOKEN_ENV = "JOBMASTER_DASHBOARD_TOKEN"
USER_ENV = "JOBMASTER_DASHBOARD_USER"
PASSWORD_ENV = "JOBMASTER_DASHBOARD_PASSWORD"
PUBLIC_PATHS = ("/login", "/static/")
"""Paths served without credentials (the login form and the stylesheet)."""


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
    def from_env(cls, environ: Mapping[str, str]) -> AuthConfig | None:
        token = environ.get(TOKEN_ENV) or None
        user = environ.get(USER_ENV) or None
        password = environ.get(PASSWORD_ENV) or None
        if token is None and user is None and password is None:
            return None
        if (user is None) != (password is None):
            raise AuthError(f"set both {USER_ENV} and {PASSWORD_ENV}, or neither")
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
    config = AuthConfig.from_env(os.environ if environ is None else environ)
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


def is_authenticated(conn: HTTPConnection, auth: AuthConfig) -> bool:
    header = conn.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return auth.check_token(credentials.strip())
    if scheme.lower() == "basic" and credentials:
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        return bool(sep) and auth.check_basic(user, password)
    session = conn.cookies.get(SESSION_COOKIE)
    return session is not None and auth.check_session(session)


class AuthMiddleware:
    """Lets authenticated requests through; sends browsers to the login form, others a 401."""

    def __init__(self, app: ASGIApp, auth: AuthConfig | None, prefix: str) -> None:
        self.app = app
        self.auth = auth
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.auth is None or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        conn = HTTPConnection(scope)
        if path.startswith(PUBLIC_PATHS) or is_authenticated(conn, self.auth):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response = self._refusal(scope, conn, path)
        await response(scope, receive, send)

    def _refusal(self, scope: Scope, conn: HTTPConnection, path: str) -> Response:
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
