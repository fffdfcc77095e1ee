"""Where a ``redis://`` URL points, for the connections jobmaster opens itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse


@dataclass(frozen=True)
class Address:
    """Where a ``redis://`` URL points, and how to log in there."""

    host: str
    port: int
    username: str | None
    password: str | None
    db: int

    @classmethod
    def parse(cls, url: str) -> Address:
        parsed = urlparse(url)
        path = parsed.path.strip("/")
        return cls(
            host=parsed.hostname or "localhost",
            port=parsed.port or 6379,
            username=unquote(parsed.username) if parsed.username else None,
            password=unquote(parsed.password) if parsed.password else None,
            db=int(path) if path else 0,
        )

    def handshake(self) -> list[list[Any]]:
        """The commands a new connection sends first (AUTH, SELECT), if any."""
        commands: list[list[Any]] = []
        if self.password is not None:
            user = [] if self.username is None else [self.username]
            commands.append(["AUTH", *user, self.password])
        if self.db:
            commands.append(["SELECT", self.db])
        return commands

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def supports(url: str) -> bool:
    """Whether a Redis URL is one this connection speaks to (plain TCP, ``redis://``)."""
    parsed = urlparse(url)
    return parsed.scheme == "redis" and not parsed.query
