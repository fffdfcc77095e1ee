"""Webhooks: deliveries from real worker processes to a local HTTP server, signed, retried
with backoff, recorded on the job, and made by another worker when the first one dies."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from jobmaster import ConfigError, JobState, Registry, Retry, Webhook
from jobmaster.ops.webhooks import verify
from tests.conftest import finish, start_worker, stop_process, wait_until

APP = "apps.webhookapp:registry"


@dataclass
class Receiver:
    """A local HTTP server that answers 500 to its first ``failures`` requests."""

    failures: int = 0
    hang_first: bool = False
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append((dict(self.headers.items()), body))
            if state.hang_first and len(state.requests) == 1:
                state.release.wait(10)
            status = 500 if len(state.requests) <= state.failures else 200
            self.send_response(status)
            self.end_headers()
            state.answered.append(status)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def producer(registry: Registry) -> Registry:
    """The webhook app's jobs as a producer declares them (without the webhook)."""

    @registry.job(queue="hooks", retry=Retry(max_attempts=1))
    async def fail_loudly(message: str) -> None:
        raise RuntimeError(message)

    @registry.job(queue="hooks")
    async def succeed(n: int) -> int:
        return n

    return registry


async def test_a_failed_job_is_posted_signed_and_retried_until_it_is_taken(
    producer: Registry, receiver: Receiver, redis_url: str
) -> None:
    receiver.failures = 2
    ok = await producer.enqueue("succeed", [1])  # notifies on failure only
    failed = await producer.enqueue("fail_loudly", ["disk full"])
    worker = start_worker(APP, redis_url, env={"WEBHOOK_URL": receiver.url})
    try:
        job = await wait_until(lambda: _notified(failed, 3), timeout=20)
    finally:
        stop_process(worker)

    assert receiver.answered == [500, 500, 200]
    bodies = [json.loads(body) for _, body in receiver.requests]
    assert all(body == bodies[0] for body in bodies)
    delivery = bodies[0]["delivery"]
    assert bodies[0] == {
        "delivery": delivery,
        "job_id": failed.id,
        "name": "fail_loudly",
        "queue": "hooks",
        "state": "failed",
        "attempts": 1,
        "error": {"type": "RuntimeError", "message": "disk full"},
        "links": {"job": f"http://dash.example/job?queue=hooks&id={failed.id}"},
    }
    for headers, body in receiver.requests:
        assert headers["X-Jobmaster-Delivery"] == delivery
        assert verify("s3cret", headers, body)
        assert not verify("another secret", headers, body)

    assert [(n.number, n.ok, n.status, n.final) for n in job.notifications] == [
        (1, False, 500, False),
        (2, False, 500, False),
        (3, True, 200, True),
    ]
    assert {n.delivery for n in job.notifications} == {delivery}
    assert job.notifications[0].error == "HTTP 500 Internal Server Error"
    assert (await ok.info()).state == JobState.SUCCEEDED
    assert (await ok.info()).notifications == []


async def test_a_delivery_outlives_the_worker_that_claimed_it(
    producer: Registry, receiver: Receiver, redis_url: str
) -> None:
    receiver.hang_first = True
    failed = await producer.enqueue("fail_loudly", ["gone"])
    env = {"WEBHOOK_URL": receiver.url}
    first = start_worker(APP, redis_url, env=env)
    try:
        await wait_until(lambda: receiver.requests, timeout=20)  # the first try hangs
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        stop_process(first)
    receiver.release.set()
    second = start_worker(APP, redis_url, env=env)
    try:  # once the claim's lease (2 x timeout + 1 s) passed, the second worker delivers
        job = await wait_until(lambda: _notified(failed, 1), timeout=20)
    finally:
        stop_process(second)

    assert len(receiver.requests) == 2
    ids = {headers["X-Jobmaster-Delivery"] for headers, _ in receiver.requests}
    assert len(ids) == 1
    assert [(n.number, n.ok) for n in job.notifications] == [(1, True)]


async def test_a_delivery_survives_its_worker_killed_right_after_the_job_ended(
    producer: Registry, receiver: Receiver, redis_url: str
) -> None:
    failed = await producer.enqueue("fail_loudly", ["killed"])
    env = {"WEBHOOK_URL": receiver.url}
    doomed = start_worker(APP, redis_url, env={**env, "DIE_AFTER_FINAL": "1"})
    code, out = finish(doomed)  # killed once the job's end was recorded
    assert code == -signal.SIGKILL, out
    assert (await failed.info()).state is JobState.FAILED
    assert receiver.requests == []
    second = start_worker(APP, redis_url, env=env)
    try:
        job = await wait_until(lambda: _notified(failed, 1), timeout=20)
    finally:
        stop_process(second)

    assert len(receiver.requests) == 1  # as recorded: one delivery, one try
    (headers, body), (note,) = receiver.requests[0], job.notifications
    assert json.loads(body)["state"] == "failed"
    assert headers["X-Jobmaster-Delivery"] == note.delivery
    assert (note.number, note.ok, note.status, note.final) == (1, True, 200, True)


async def _notified(handle: Any, tries: int) -> Any:
    job = await handle.info()
    return job if len(job.notifications) >= tries else None


def test_bad_webhooks_are_refused(registry: Registry) -> None:
    with pytest.raises(ValueError, match="http:// or https:// URL"):
        Webhook("ftp://example.com")
    with pytest.raises(ValueError, match="on= takes final states"):
        Webhook("http://127.0.0.1/", on=("started",))
    with pytest.raises(ValueError, match="max_tries= must be an integer >= 1"):
        Webhook("http://127.0.0.1/", max_tries=0)
    with pytest.raises(ConfigError, match=r"notify= takes a jobmaster\.Webhook"):

        @registry.job(notify="http://127.0.0.1/")
        async def job() -> None:
            pass
