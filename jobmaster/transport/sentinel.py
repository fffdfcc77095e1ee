"""Redis Sentinel: ``redis+sentinel://[user:password@]h:p[,h:p...]/SERVICE[/DB]``.

The sentinels are asked where the master of SERVICE is whenever a connection is opened,
so a connection lost in a failover (the old master died, or was made a replica: its
``READONLY`` and ``UNBLOCKED`` replies drop the connection too) reconnects to the new
master. This holds for redis-py's clients (its ``SentinelConnectionPool``) and for
jobmaster's own connections (:class:`MasterLocator`). The credentials and DB are those of
the Redis servers; the sentinels are asked without credentials.

A location is only as fresh as the sentinels' view: until they have failed over (about
``down-after-milliseconds`` plus an election), they still name the dead master, and
connecting fails as it would to any Redis that is down; callers retry as they do then.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

import hiredis
import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from redis.exceptions import ConnectionError

from jobmaster.transport.address import Address
from jobmaster.transport.resp import encode_command

SCHEMES = ("redis+sentinel", "rediss+sentinel")
DEFAULT_PORT = 26379

CONNECTION_LOST_REPLIES = ("READONLY", "UNBLOCKED")
"""Error replies of a master made a replica: the connection is dropped, and the next one
asks the sentinels where the master is now. Nothing was written by such a call (a replica
refuses writes), so it may be sent again."""


def is_sentinel(url: str) -> bool:
    """Whether a URL names a Sentinel deployment."""
    return url.partition("://")[0] in SCHEMES


@dataclass(frozen=True)
class SentinelURL:
    """What a ``redis+sentinel://`` URL says."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    username: str | None
    password: str | None
    tls: bool

    @classmethod
    def parse(cls, url: str) -> SentinelURL:
        """Raises ValueError, saying what the form is, for a URL that does not fit it."""
        scheme, _, rest = url.partition("://")
        form = f"{scheme}://[user:password@]host:port[,host:port...]/SERVICE[/DB]"
        if scheme not in SCHEMES:
            raise ValueError(f"not a Sentinel URL ({url!r}); the form is {form}")
        rest, _, query = rest.partition("?")
        if query and parse_qsl(query):
            raise ValueError(f"{url!r}: a Sentinel URL takes no query options")
        credentials, at, hosts_path = rest.rpartition("@")
        hosts, _, path = hosts_path.partition("/")
        parts = [p for p in path.split("/") if p]
        if not hosts or not 1 <= len(parts) <= 2:
            raise ValueError(f"{url!r} does not name its sentinels and service; the form is {form}")
        try:
            db = int(parts[1]) if len(parts) == 2 else 0
            sentinels = tuple(_host_port(h) for h in hosts.split(","))
        except ValueError:
            raise ValueError(f"{url!r}: bad port or DB number; the form is {form}") from None
        username = password = None
        if at:
            user, colon, secret = credentials.partition(":")
            username = unquote(user) if user else None
            password = unquote(secret) if colon else None
        return cls(
            sentinels, unquote(parts[0]), db, username, password, scheme.startswith("rediss")
        )

    def master(self, host: str, port: int) -> Address:
        """The address of the master at ``host:port``, with this URL's login and DB."""
        return Address(host, port, self.username, self.password, self.db)


def _host_port(text: str) -> tuple[str, int]:
    host, colon, port = text.strip().rpartition(":")
    if not colon:
        return text.strip(), DEFAULT_PORT
    return host.strip("[]"), int(port)


class FixedAddress:
    """The locator of a plain ``redis://`` URL: always the same address."""

    def __init__(self, address: Address) -> None:
        self.address = address

    async def locate(self) -> Address:
        return self.address

    def locate_sync(self) -> Address:
        return self.address


class MasterLocator:
    """Asks the sentinels, in turn, where the master is (the first that answers is asked
    first next time).

    Args:
        url: the parsed Sentinel URL.
        timeout: seconds to wait for each sentinel.
    """

    def __init__(self, url: SentinelURL, timeout: float = 1.0) -> None:
        self.url = url
        self.timeout = timeout
        self._sentinels = list(url.sentinels)
        # Until located, messages name the service (its master's address is not known).
        self.address = Address(f"{url.service}@sentinels", 0, url.username, url.password, url.db)

    async def locate(self) -> Address:
        """The master's address; raises ConnectionError when no sentinel names one."""
        errors = []
        for number, (host, port) in enumerate(list(self._sentinels)):
            try:
                async with asyncio.timeout(self.timeout):
                    reply = await _ask(host, port, self._question())
            except (OSError, TimeoutError, ConnectionError) as exc:
                errors.append(f"{host}:{port}: {exc or type(exc).__name__}")
                continue
            if found := self._answer(number, reply, errors, host, port):
                return found
        raise self._not_found(errors)

    def locate_sync(self) -> Address:
        """:meth:`locate` for blocking callers."""
        errors = []
        for number, (host, port) in enumerate(list(self._sentinels)):
            try:
                reply = _ask_sync(host, port, self._question(), self.timeout)
            except (OSError, ConnectionError) as exc:
                errors.append(f"{host}:{port}: {exc or type(exc).__name__}")
                continue
            if found := self._answer(number, reply, errors, host, port):
                return found
        raise self._not_found(errors)

    def _question(self) -> bytes:
        return encode_command(["SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.url.service])

    def _answer(
        self, number: int, reply: Any, errors: list[str], host: str, port: int
    ) -> Address | None:
        if not isinstance(reply, list) or len(reply) != 2:
            errors.append(f"{host}:{port}: {reply!r}")
            return None
        if number:
            self._sentinels.insert(0, self._sentinels.pop(number))
        self.address = self.url.master(reply[0].decode(), int(reply[1]))
        return self.address

    def _not_found(self, errors: Sequence[str]) -> ConnectionError:
        return ConnectionError(
            f"no sentinel names a master for {self.url.service!r} ({'; '.join(errors)})"
        )


async def _ask(host: str, port: int, question: bytes) -> Any:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(question)
        parser = hiredis.Reader()
        while (reply := parser.gets()) is False:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("closed by the sentinel")
            parser.feed(data)
        return reply
    finally:
        writer.close()


def _ask_sync(host: str, port: int, question: bytes, timeout: float) -> Any:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(question)
        parser = hiredis.Reader()
        while (reply := parser.gets()) is False:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed by the sentinel")
            parser.feed(data)
        return reply


def locator(url: str | Address, timeout: float = 1.0) -> FixedAddress | MasterLocator:
    """Where the connections of a URL (or of one node's address) go: a fixed address, or
    the sentinels' master."""
    if isinstance(url, Address):
        return FixedAddress(url)
    if is_sentinel(url):
        return MasterLocator(SentinelURL.parse(url), timeout)
    return FixedAddress(Address.parse(url))


# -- redis-py's clients ----------------------------------------------------------------------


class _AsyncMaster(redis.asyncio.Redis):
    """redis-py's client of the master, which closes its sentinels' clients too."""

    sentinel_clients: list[redis.asyncio.Redis]

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        for client in self.sentinel_clients:
            await client.aclose()


class _SyncMaster(redis.Redis):
    sentinel_clients: list[redis.Redis]

    def close(self) -> None:
        super().close()
        for client in self.sentinel_clients:
            client.close()


def async_master(url: str, **options: Any) -> redis.asyncio.Redis:
    """redis-py's asyncio client of the master (``options``: the connections' own)."""
    parsed = SentinelURL.parse(url)
    manager = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        list(parsed.sentinels), sentinel_kwargs=_sentinel_options(options)
    )
    client: _AsyncMaster = manager.master_for(
        parsed.service, redis_class=_AsyncMaster, **_master_options(parsed, options)
    )
    client.sentinel_clients = list(manager.sentinels)
    return client


def sync_master(url: str, **options: Any) -> redis.Redis:
    """redis-py's synchronous client of the master."""
    parsed = SentinelURL.parse(url)
    manager = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        list(parsed.sentinels), sentinel_kwargs=_sentinel_options(options)
    )
    client: _SyncMaster = manager.master_for(  # type: ignore[no-untyped-call]
        parsed.service, redis_class=_SyncMaster, **_master_options(parsed, options)
    )
    client.sentinel_clients = list(manager.sentinels)
    return client


def _sentinel_options(options: dict[str, Any]) -> dict[str, Any]:
    timeout = options.get("socket_connect_timeout", 1.0)
    return {"socket_timeout": timeout, "socket_connect_timeout": timeout}


def _master_options(parsed: SentinelURL, options: dict[str, Any]) -> dict[str, Any]:
    master = {**options, "db": parsed.db, "username": parsed.username, "password": parsed.password}
    if parsed.tls:
        master["ssl"] = True
    return master
