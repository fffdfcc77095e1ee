"""A script call whose reply is lost (the connection drops after Redis ran it) is sent again
with the same token and answers as the first time: claims and finishes are idempotent."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import hiredis
import structlog

from jobmaster import AttemptOutcome, Registry
from jobmaster.scripts import source
from tests.conftest import live_worker


class ReplyDropper:
    """A TCP proxy in front of Redis that, once armed, lets the next call of one script
    through, waits for Redis's reply to it and drops the connection instead of passing the
    reply on: Redis ran the script, the caller never hears of it. (An error reply, such as
    NOSCRIPT before the script is loaded, is passed on, and the next call is watched.)"""

    def __init__(self, redis_url: str) -> None:
        target = urlparse(redis_url)
        self._target = (target.hostname or "127.0.0.1", target.port or 6379)
        self._armed: bytes | None = None
        self.dropped = 0
        self.url = ""
        self._server: asyncio.Server | None = None

    def arm(self, script: str) -> None:
        """Drop the reply of the next call of ``script`` (a name in jobmaster/lua)."""
        self._armed = hashlib.sha1(source(script).encode()).hexdigest().encode()

    async def __aenter__(self) -> ReplyDropper:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"redis://127.0.0.1:{port}/0"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 1)

    async def _serve(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        server_in, server = await asyncio.open_connection(*self._target)
        doomed: list[tuple[int, bytes]] = []  # the command whose reply is dropped, and its sha

        async def upstream() -> None:
            commands, sent = hiredis.Reader(), 0
            while data := await client_in.read(65536):
                commands.feed(data)
                while (command := commands.gets()) is not False:
                    if self._armed and command[:2] == [b"EVALSHA", self._armed]:
                        doomed.append((sent, self._armed))
                        self._armed = None
                    sent += 1
                server.write(data)
                await server.drain()

        async def downstream() -> None:
            replies, received = hiredis.Reader(), 0
            while data := await server_in.read(65536):
                replies.feed(data)
                while (reply := replies.gets()) is not False:
                    refused = isinstance(reply, hiredis.ReplyError)
                    if doomed and received == doomed[0][0] and refused:
                        self._armed = doomed.pop()[1]  # not run: watch the next call
                    received += 1
                if doomed and received > doomed[0][0]:
                    self.dropped += 1
                    client.transport.abort()
                    return
                client.write(data)
                await client.drain()

        tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            server.close()
            client.close()


@contextlib.asynccontextmanager
async def proxied(redis_url: str, tmp_path: Path) -> AsyncIterator[tuple[ReplyDropper, Registry]]:
    async with ReplyDropper(redis_url) as proxy:
        registry = Registry(proxy.url, config_dir=tmp_path, environ={})
        try:
            yield proxy, registry
        finally:
            await registry.aclose()
            registry.close()


def _echo(registry: Registry) -> Any:
    @registry.job()
    async def echo(n: int) -> int:
        return n

    return echo


async def test_a_claim_whose_reply_was_lost_runs_its_jobs_at_once(
    redis_url: str, tmp_path: Path
) -> None:
    async with proxied(redis_url, tmp_path) as (proxy, registry):
        echo = _echo(registry)
        handles = [await echo.enqueue(n) for n in range(3)]
        proxy.arm("claim")
        async with live_worker(registry, lease=30):
            # not after a lease (30 s), as lost attempts
            assert [await h.result(timeout=5) for h in handles] == [0, 1, 2]
        assert proxy.dropped == 1
        for handle in handles:
            job = await handle.info()
            assert [a.outcome for a in job.attempts] == [AttemptOutcome.SUCCEEDED]


async def test_a_finish_whose_reply_was_lost_is_not_said_to_be_discarded(
    redis_url: str, tmp_path: Path
) -> None:
    async with proxied(redis_url, tmp_path) as (proxy, registry):
        echo = _echo(registry)
        proxy.arm("finish")
        with structlog.testing.capture_logs() as logs:
            async with live_worker(registry, lease=30):
                handle = await echo.enqueue(7)
                assert await handle.result(timeout=5) == 7
        assert proxy.dropped == 1
        job = await handle.info()
        assert [a.outcome for a in job.attempts] == [AttemptOutcome.SUCCEEDED]
        assert not [e for e in logs if "discarded" in e["event"]], logs
