"""The dashboard's login sessions: one key each, expiring when unused (sliding)."""

from __future__ import annotations

from typing import Any

from jobmaster.store.connection import StoreConnection


class SessionCommands:
    """Open, use and close login sessions, each known by the SHA-256 of its id."""

    def __init__(self, conn: StoreConnection) -> None:
        self.redis = conn.redis
        self.keys = conn.keys

    async def open_session(self, session_hash: str, value: bytes, idle_ms: int) -> None:
        """Record a session that expires after ``idle_ms`` without use."""
        await self.redis.set(self.keys.dashboard_session(session_hash), value, px=idle_ms)

    async def use_session(self, session_hash: str, idle_ms: int) -> bytes | None:
        """A session's value, its expiry pushed ``idle_ms`` away (one GETEX); None when it
        was closed or has expired."""
        raw: Any = await self.redis.getex(self.keys.dashboard_session(session_hash), px=idle_ms)
        return bytes(raw) if raw is not None else None

    async def close_session(self, session_hash: str) -> None:
        """Forget a session: its cookie is refused from now on."""
        await self.redis.delete(self.keys.dashboard_session(session_hash))
