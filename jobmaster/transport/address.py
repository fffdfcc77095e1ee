"""Where a Redis URL points, for the connections jobmaster opens itself: ``redis://`` (one
server) and ``redis+cluster://h:p[,h:p...]`` (Redis Cluster, ``rediss+cluster://`` over TLS)."""

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


CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


def supports(url: str) -> bool:
    """Whether a Redis URL is one the fast path speaks to (plain TCP: ``redis://`` or
    ``redis+cluster://``)."""
    scheme = url.partition("://")[0].lower()
    if scheme == "redis+cluster":
        return "?" not in url
    parsed = urlparse(url)
    return parsed.scheme == "redis" and not parsed.query


def is_cluster(url: str) -> bool:
    """Whether a URL names a Redis Cluster (``redis+cluster://`` or ``rediss+cluster://``)."""
    return url.partition("://")[0].lower() in CLUSTER_SCHEMES


@dataclass(frozen=True)
class ClusterSeeds:
    """A ``redis+cluster://[user:password@]h:p[,h:p...]`` URL: the nodes to discover the
    cluster from, the login, and whether to use TLS."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None
    tls: bool

    @classmethod
    def parse(cls, url: str) -> ClusterSeeds:
        scheme, sep, rest = url.partition("://")
        if not sep or scheme.lower() not in CLUSTER_SCHEMES:
            raise ValueError(f"not a Redis Cluster URL (redis+cluster://h:p[,h:p...]): {url!r}")
        netloc, _, path = rest.partition("/")
        netloc = netloc.partition("?")[0]
        path = path.partition("?")[0].strip("/")
        if path not in ("", "0"):
            raise ValueError(f"Redis Cluster has only database 0, not {path!r}: {url!r}")
        userinfo, at, hosts = netloc.rpartition("@")
        username = password = None
        if at:
            user, colon, secret = userinfo.partition(":")
            username = unquote(user) if user else None
            password = unquote(secret) if colon else None
        nodes = []
        for item in hosts.split(","):
            host, colon, port = item.strip().rpartition(":")
            if not colon:
                host, port = item.strip(), "6379"
            host = host.strip("[]")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"bad node {item!r} in Redis Cluster URL {url!r} (want h:p)")
            nodes.append((host, int(port)))
        return cls(tuple(nodes), username, password, scheme.lower() == "rediss+cluster")

    def address(self, host: str, port: int) -> Address:
        """How to reach and log in to one node of the cluster."""
        return Address(host, port, self.username, self.password, 0)
