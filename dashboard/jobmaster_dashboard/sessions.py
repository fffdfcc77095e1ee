"""Login sessions kept in Redis: a session cookie is accepted only while its session lives.

The cookie holds a random id and its HMAC under a key derived from the credentials, so
changing the credentials logs every browser out and a forged cookie is refused without
asking Redis. Redis holds the session under the SHA-256 of its id (through
:class:`jobmaster.store.Store`, in the registry's namespace); it expires after
``session_ttl`` seconds without a request (each request pushes the expiry back), and
logging out deletes it, so a copied cookie is refused from then on.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

from jobmaster import Registry
from jobmaster_dashboard.auth import AuthConfig, AuthError

SESSION_TTL_ENV = "JOBMASTER_DASHBOARD_SESSION_TTL"
SECURE_COOKIES_ENV = "JOBMASTER_DASHBOARD_SECURE_COOKIES"
DEFAULT_SESSION_TTL = 12 * 3600.0
"""A session ends after 12 hours without a request."""
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class SessionSettings:
    """How long an unused session lives, and whether cookies are always ``Secure``.

    Cookies are ``Secure`` anyway when the request came over HTTPS (behind a proxy: when
    the server trusts its ``X-Forwarded-Proto``).
    """

    session_ttl: float = DEFAULT_SESSION_TTL
    secure_cookies: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.session_ttl) and self.session_ttl >= 0.001):
            raise AuthError(
                f"session_ttl must be a positive number of seconds, got {self.session_ttl!r}"
            )

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str],
        session_ttl: float | None = None,
        secure_cookies: bool | None = None,
    ) -> SessionSettings:
        """From the arguments, else ``JOBMASTER_DASHBOARD_SESSION_TTL`` (seconds) and
        ``JOBMASTER_DASHBOARD_SECURE_COOKIES`` (1/0), else the defaults."""
        if session_ttl is None:
            raw = environ.get(SESSION_TTL_ENV, "").strip()
            try:
                session_ttl = float(raw) if raw else DEFAULT_SESSION_TTL
            except ValueError:
                raise AuthError(
                    f"{SESSION_TTL_ENV} must be a number of seconds, got {raw!r}"
                ) from None
        if secure_cookies is None:
            flag = environ.get(SECURE_COOKIES_ENV, "").strip().lower()
            if flag not in _TRUE + _FALSE:
                raise AuthError(f"{SECURE_COOKIES_ENV} must be 1 or 0, got {flag!r}")
            secure_cookies = flag in _TRUE
        return cls(session_ttl=session_ttl, secure_cookies=secure_cookies)

    @property
    def idle_ms(self) -> int:
        return max(1, round(self.session_ttl * 1000))


def _hash(cookie: str) -> str:
    session_id = cookie.partition(".")[0]
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    """Open, check and close the login sessions of one dashboard."""

    def __init__(self, registry: Registry, auth: AuthConfig, settings: SessionSettings) -> None:
        self._registry = registry
        self._auth = auth
        self.settings = settings

    async def open(self, user: str) -> str:
        """A new session for ``user`` (a name, or ``token``); the cookie's value."""
        cookie = self._auth.new_session()
        record = json.dumps({"user": user, "since": time.time()}).encode()
        store = self._registry.connection().store
        await store.sessions.open_session(_hash(cookie), record, self.settings.idle_ms)
        return cookie

    async def check(self, cookie: str) -> bool:
        """Whether the cookie belongs to a live session (whose expiry it pushes back)."""
        if not self._auth.check_session(cookie):
            return False
        store = self._registry.connection().store
        return await store.sessions.use_session(_hash(cookie), self.settings.idle_ms) is not None

    async def close(self, cookie: str) -> None:
        """End the cookie's session (a cookie that is not one of ours changes nothing)."""
        if self._auth.check_session(cookie):
            await self._registry.connection().store.sessions.close_session(_hash(cookie))
