"""What the dashboard's tests share: the jobs they run, a client, and reading event streams."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from starlette.testclient import TestClient

from jobmaster import Context, JobState, Registry, Retry
from jobmaster.testing import run_jobs
from jobmaster_dashboard import create_app

HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
TOKEN = "t0ken-for-tests"


def declare_jobs(registry: Registry) -> None:
    @registry.job(queue="dash")
    async def echo(text: str) -> str:
        return text

    @registry.job(queue="dash", retry=Retry(max_attempts=1))
    def boom(ctx: Context, text: str) -> None:
        ctx.progress(0.5)
        ctx.log.info("about to fail", text=text)
        raise ValueError(f"bad input {text}")

    @registry.job(queue="dash")
    async def add(a: int, b: int) -> int:
        return a + b

    @registry.job(queue="dash")
    async def tail(ctx: Context, lines: int, pause: float) -> int:
        for number in range(lines):
            ctx.log.info("step", number=number)
            ctx.progress((number + 1) / lines)
            await asyncio.sleep(pause)
        return lines


@contextmanager
def client_for(registry: Registry, **options: object) -> Iterator[TestClient]:
    options.setdefault("auth", None)
    app = create_app(registry, **options)  # type: ignore[arg-type]
    with TestClient(app, follow_redirects=False) as client:
        yield client


def csrf_of(client: TestClient, page: str = "/") -> str:
    assert client.get(page).status_code == 200
    return client.cookies["jobmaster_csrf"]


async def failed_job_id(registry: Registry, text: str = "x") -> str:
    declare_jobs(registry)
    handle = await registry.enqueue("boom", {"text": text})
    await run_jobs(registry)
    assert (await handle.info()).state is JobState.FAILED
    return handle.id


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event, or a comment (``name`` "comment")."""

    name: str
    data: dict[str, Any]


class EventReader:
    """Reads the frames of a ``text/event-stream`` response, blocking (use from a thread)."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self.seen: list[Event] = []

    def next(self) -> Event:
        name, data = "", ""
        for line in self._lines:
            if line == "":
                if name or data:
                    break
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "":
                name = name or "comment"
                data = value
            elif field == "event":
                name = value
            elif field == "data":
                data = value
            elif field == "retry":
                name = "retry"
        else:
            raise AssertionError("the stream ended")
        parsed = json.loads(data) if data.startswith("{") else {"text": data}
        event = Event(name or "message", parsed)
        self.seen.append(event)
        return event

    def until(self, wanted: Callable[[Event], bool], timeout: float = 15.0) -> Event:
        """The first event ``wanted`` accepts (the stream must send a keep-alive now and
        then for the timeout to be noticed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            event = self.next()
            if wanted(event):
                return event
        raise AssertionError(f"no such event within {timeout}s; saw {self.seen}")
