"""Live updates: the event stream fed by real state changes, read as a browser would."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from dashboard_support import TOKEN, EventReader, client_for, declare_jobs
from starlette.applications import Starlette

from jobmaster import JobState, Registry
from jobmaster.embedded import free_port
from jobmaster.testing import run_jobs
from jobmaster_dashboard import create_app, live
from tests.conftest import live_worker, wait_until


@pytest.fixture(autouse=True)
def frequent_keepalives(monkeypatch: pytest.MonkeyPatch) -> None:
    """A keep-alive every 0.3 s, so that a reader notices its deadline (and, once one came,
    the stream has been listening for a while)."""
    monkeypatch.setattr(live, "KEEPALIVE_SECONDS", 0.3)
    monkeypatch.setattr(live, "FINISHED_RECHECK_SECONDS", 0.5)


def is_state(state: JobState) -> object:
    return lambda event: event.name == "state" and event.data["state"] == state.value


async def test_a_job_stream_reports_every_state_change_of_a_retry(registry: Registry) -> None:
    declare_jobs(registry)
    handle = await registry.enqueue("echo", {"text": "again"})
    await handle.cancel()
    with (
        client_for(registry) as client,
        client.stream("GET", "/events", params={"queue": "dash", "job": handle.id}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = EventReader(response.iter_lines())
        first = await asyncio.to_thread(reader.until, lambda e: e.name == "state")
        assert first.data == {"queue": "dash", "job": handle.id, "state": "cancelled", "at": None}
        await asyncio.to_thread(reader.until, lambda e: e.name == "comment")  # listening
        assert await handle.retry() is JobState.QUEUED
        await run_jobs(registry)
        await asyncio.to_thread(reader.until, is_state(JobState.SUCCEEDED))
    changes = [e.data for e in reader.seen if e.name == "state"][1:]
    assert [c["state"] for c in changes][-3:] == ["queued", "active", "succeeded"]
    assert all(c["at"] for c in changes)  # from events (the first one was the snapshot)


async def test_a_job_stream_tails_a_running_job(registry: Registry) -> None:
    declare_jobs(registry)
    handle = await registry.enqueue("tail", {"lines": 16, "pause": 0.2})
    with client_for(registry) as client:
        page = client.get("/job", params={"queue": "dash", "id": handle.id})
        assert '<span id="job-state" class="state state-queued"' in page.text
        assert 'data-events-url="/events?queue=dash&amp;job=' in page.text
        with client.stream("GET", "/events", params={"queue": "dash", "job": handle.id}) as r:
            reader = EventReader(r.iter_lines())
            await asyncio.to_thread(reader.until, is_state(JobState.QUEUED))
            async with live_worker(registry, concurrency=2):
                await asyncio.to_thread(reader.until, is_state(JobState.ACTIVE))
                # The worker writes a running job's output every 0.25 s once it is busy
                # (a lone job's lines may wait for its end): another job keeps it busy.
                await registry.enqueue("echo", {"text": "meanwhile"})
                await asyncio.to_thread(reader.until, lambda e: e.name == "output")
                fragment = client.get("/job/live", params={"queue": "dash", "id": handle.id})
                assert fragment.status_code == 200
                assert "<html" not in fragment.text
                assert "step" in fragment.text  # a log line, while the job runs
                assert "running" in fragment.text
                await asyncio.to_thread(reader.until, is_state(JobState.SUCCEEDED))
    outputs = [e for e in reader.seen if e.name == "output"]
    assert len(outputs) >= 2, reader.seen  # lines kept coming while it ran
    assert (await handle.info()).state is JobState.SUCCEEDED


async def test_a_queue_stream_sends_states(registry: Registry) -> None:
    declare_jobs(registry)
    with (
        client_for(registry) as client,
        client.stream("GET", "/events", params={"queue": "dash"}) as response,
    ):
        reader = EventReader(response.iter_lines())
        await asyncio.to_thread(reader.until, lambda e: e.name == "comment")
        new = await registry.enqueue("echo", {"text": "after"})
        event = await asyncio.to_thread(reader.until, lambda e: e.name == "state")
        assert event.data["job"] == new.id
        assert event.data["state"] == "queued"
    assert not [e for e in reader.seen if e.name == "counts"]


async def test_a_counts_stream_sends_counts_only(registry: Registry) -> None:
    """The overview's stream: a few counts for many jobs, never each job's change."""
    declare_jobs(registry)
    await registry.enqueue("echo", {"text": "before"})
    with (
        client_for(registry) as client,
        client.stream("GET", "/events", params={"queue": "dash", "counts": "1"}) as response,
    ):
        reader = EventReader(response.iter_lines())
        counts = await asyncio.to_thread(reader.until, lambda e: e.name == "counts")
        assert counts.data["queue"] == "dash"
        assert counts.data["counts"]["queued"] == 1
        await asyncio.to_thread(reader.until, lambda e: e.name == "comment")
        await registry.get("echo").enqueue_many([(f"n{i}",) for i in range(500)])
        await run_jobs(registry)
        await asyncio.to_thread(
            reader.until, lambda e: e.name == "counts" and e.data["counts"]["succeeded"] == 501
        )
    assert [e.name for e in reader.seen if e.name not in ("comment", "retry")] == (
        ["counts"] * len([e for e in reader.seen if e.name == "counts"])
    )
    assert len(reader.seen) < 50  # 1,500 state changes


async def test_every_queue_is_counted_when_none_is_named(registry: Registry) -> None:
    declare_jobs(registry)
    with (
        client_for(registry) as client,
        client.stream("GET", "/events", params={"counts": "1"}) as response,
    ):
        reader = EventReader(response.iter_lines())
        await asyncio.to_thread(reader.until, lambda e: e.name == "comment")
        await registry.get("echo").options(queue="brand-new").enqueue("hi")
        counts = await asyncio.to_thread(reader.until, lambda e: e.name == "counts")
        assert counts.data == {"queue": "brand-new", "counts": counts.data["counts"]}
        assert counts.data["counts"]["queued"] == 1
    assert not [e for e in reader.seen if e.name == "state"]


async def test_a_stream_says_when_its_job_is_deleted(registry: Registry) -> None:
    declare_jobs(registry)
    handle = await registry.enqueue("echo", {"text": "bye"})
    with client_for(registry) as client:
        assert client.get("/events", params={"job": handle.id}).status_code == 400
        missing = client.get("/events", params={"queue": "dash", "job": "nope"})
        assert missing.status_code == 404
        with client.stream("GET", "/events", params={"queue": "dash", "job": handle.id}) as r:
            reader = EventReader(r.iter_lines())
            await asyncio.to_thread(reader.until, is_state(JobState.QUEUED))
            await run_jobs(registry)
            await asyncio.to_thread(reader.until, is_state(JobState.SUCCEEDED))
            await registry.delete_job(handle.id, "dash")
            await asyncio.to_thread(reader.until, lambda e: e.name == "gone")
            with pytest.raises(AssertionError, match="ended"):
                reader.next()  # the stream ends after "gone"


async def test_the_stream_needs_credentials(registry: Registry) -> None:
    with client_for(registry, auth=TOKEN) as client:
        assert client.get("/events").status_code == 401
        with client.stream(
            "GET", "/events", headers={"authorization": f"Bearer {TOKEN}"}
        ) as response:
            assert response.status_code == 200
            assert EventReader(response.iter_lines()).next().name == "retry"


@contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """The app served by a real uvicorn in a thread, on a free loopback port."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


async def test_a_stream_stops_when_the_browser_goes_away(registry: Registry) -> None:
    declare_jobs(registry)
    app = create_app(registry, auth=None)
    hub: live.EventHub = app.state.event_hub
    with serving(app) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            for _ in range(2):  # the second stream starts a new reader after the first left
                async with client.stream("GET", "/events", params={"queue": "dash"}) as response:
                    assert response.status_code == 200
                    lines = response.aiter_lines()
                    assert (await anext(lines)).startswith("retry:")
                    assert hub.listeners == 1
                    await registry.enqueue("echo", {"text": "seen"})
                    async with asyncio.timeout(10):
                        async for line in lines:
                            if line.startswith("event: state"):
                                break
                await wait_until(lambda: hub.listeners == 0, timeout=10)
