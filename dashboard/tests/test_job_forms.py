"""The job page's forms (cancel, delete, reschedule and change) and the enqueue form."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta

from dashboard_support import ESCAPED, HOSTILE, client_for, csrf_of, declare_jobs
from starlette.testclient import TestClient

from jobmaster import JobState, Registry
from jobmaster.testing import run_jobs
from jobmaster_dashboard import create_app


def error_next_to(page: str, field: str) -> str:
    """The text of the message shown for ``field`` (fails if there is none)."""
    marker = f'<span class="field-error" id="error-{field}" data-testid="error-{field}">'
    assert marker in page, f"no error shown for {field}"
    return html.unescape(page.split(marker, 1)[1].split("</span>", 1)[0])


async def test_enqueue_form_enqueues_and_opens_the_new_job(registry: Registry) -> None:
    declare_jobs(registry)
    with client_for(registry) as client:
        form = client.get("/enqueue")
        assert form.status_code == 200
        assert '<option value="add">add (queue dash)</option>' in form.text
        token = client.cookies["jobmaster_csrf"]
        done = client.post(
            "/enqueue",
            data={
                "job": "add",
                "arguments": '{"a": 2, "b": "3"}',
                "queue": "other",
                "priority": "7",
                "delay": "60",
                "tags": "billing, nightly",
                "csrf_token": token,
            },
        )
        assert done.status_code == 303
        location = done.headers["location"]
        assert location.startswith("/job?queue=other&id=")
        job_id = location.rsplit("=", 1)[1]
        page = client.get(location)
        assert 'id="job-state" class="state state-scheduled"' in page.text
    job = await registry.get_job(job_id, "other")
    assert (job.name, job.arguments, job.priority) == ("add", {"a": 2, "b": 3}, 7)
    assert job.tags == ["billing", "nightly"]
    assert job.state is JobState.SCHEDULED


async def test_enqueue_form_shows_each_error_next_to_its_field(registry: Registry) -> None:
    declare_jobs(registry)
    with client_for(registry) as client:
        token = csrf_of(client, "/enqueue")

        def post(**fields: str) -> str:
            data = {"job": "add", "arguments": '{"a": 1, "b": 2}', **fields}
            response = client.post("/enqueue", data={**data, "csrf_token": token})
            assert response.status_code == 400, response.text
            assert "Traceback" not in response.text
            return response.text

        page = post(arguments='{"a": "not a number", "b": 2}')
        assert "a: Input should be a valid integer" in error_next_to(page, "arguments")
        assert "not a number" in page  # the user's input is kept
        page = post(arguments="{nope")
        assert "not valid JSON" in error_next_to(page, "arguments")
        assert "{nope" in page
        assert "JSON object" in error_next_to(post(arguments="[1, 2]"), "arguments")
        assert "unexpected argument 'c'" in error_next_to(
            post(arguments='{"a": 1, "b": 2, "c": 3}'), "arguments"
        )
        assert "0 to 9" in error_next_to(post(priority="12"), "priority")
        assert "seconds" in error_next_to(post(delay="soon"), "delay")
        assert "queue=" in error_next_to(post(queue="no spaces"), "queue")
        assert "got 'not ok!'" in error_next_to(post(tags="ok, not ok!"), "tags")
        assert "choose a job" in error_next_to(post(job=""), "job")
        assert "no job named 'nope'" in error_next_to(post(job="nope"), "job")
        page = post(priority="x", delay="-1", queue="bad queue")
        for field in ("priority", "delay", "queue"):
            error_next_to(page, field)  # every refused field at once
        hostile = post(arguments=f'{{"a": "{HOSTILE}", "b": 1}}')
        assert HOSTILE not in hostile
        assert ESCAPED in hostile
        assert HOSTILE in error_next_to(hostile, "arguments")
    assert await registry.known_queues() == []  # nothing was enqueued


async def test_enqueue_form_without_job_names(redis_url: str) -> None:
    app = create_app(redis_url, auth=None, environ={})
    with TestClient(app, follow_redirects=False) as client:
        page = client.get("/enqueue")
        assert page.status_code == 200
        assert "knows no job names" in page.text
        assert 'action="/enqueue"' not in page.text
        token = client.cookies["jobmaster_csrf"]
        refused = client.post("/enqueue", data={"job": "add", "csrf_token": token})
        assert refused.status_code == 400
        assert "knows no job names" in refused.text


async def test_cancel_and_delete_from_the_job_page(registry: Registry) -> None:
    declare_jobs(registry)
    waiting = await registry.enqueue("echo", {"text": "later"}, delay=600)
    with client_for(registry) as client:
        token = csrf_of(client)
        form = {"queue": "dash", "id": waiting.id, "csrf_token": token}
        page = client.get("/job", params={"queue": "dash", "id": waiting.id}).text
        assert 'action="/job/cancel" class="inline" data-states="scheduled queued active' in page
        refused = client.post("/job/delete", data=form)
        assert refused.status_code == 409  # not finished: cancel it first
        assert "only finished jobs can be deleted" in refused.text
        cancelled = client.post("/job/cancel", data=form)
        assert cancelled.status_code == 303
        assert "done=cancelled" in cancelled.headers["location"]
        assert "it will not run" in client.get(cancelled.headers["location"]).text
        assert (await waiting.info()).state is JobState.CANCELLED
        again = client.post("/job/cancel", data=form)
        assert again.status_code == 409
        assert "already finished" in again.text
        deleted = client.post("/job/delete", data=form)
        assert deleted.status_code == 303
        assert deleted.headers["location"].startswith("/jobs?queue=dash&state=cancelled")
        assert "Deleted 1 job." in client.get(deleted.headers["location"]).text
        gone = client.get("/job", params={"queue": "dash", "id": waiting.id})
        assert gone.status_code == 404
        assert client.post("/job/delete", data=form).status_code == 404
    assert await registry.list_jobs("dash", JobState.CANCELLED) == []


async def test_reschedule_and_change_a_waiting_job(registry: Registry) -> None:
    declare_jobs(registry)
    handle = await registry.enqueue("add", {"a": 1, "b": 2}, delay=3600)
    with client_for(registry) as client:
        token = csrf_of(client)
        base = {"queue": "dash", "id": handle.id, "csrf_token": token}
        at = datetime.now(UTC) + timedelta(days=2)
        changed = client.post(
            "/job/change",
            data={
                **base,
                "run_at": at.isoformat(),
                "priority": "8",
                "arguments": '{"a": 5, "b": 6}',
            },
        )
        assert changed.status_code == 303
        job = await handle.info()
        assert (job.priority, job.arguments, job.state) == (8, {"a": 5, "b": 6}, JobState.SCHEDULED)
        assert job.scheduled_for is not None
        assert abs((job.scheduled_for - at).total_seconds()) < 2
        soon = client.post("/job/change", data={**base, "run_at": "in 30 seconds", "priority": "8"})
        assert soon.status_code == 303
        due = (await handle.info()).scheduled_for
        assert due is not None
        assert 20 < (due - datetime.now(UTC)).total_seconds() <= 30
        now = client.post("/job/change", data={**base, "run_at": "now", "priority": "8"})
        assert now.status_code == 303
        assert (await handle.info()).state is JobState.QUEUED
    await run_jobs(registry)
    assert await handle.result() == 11


async def test_the_change_form_shows_errors_next_to_fields(registry: Registry) -> None:
    declare_jobs(registry)
    handle = await registry.enqueue("add", {"a": 1, "b": 2}, delay=3600)
    before = await handle.info()
    with client_for(registry) as client:
        token = csrf_of(client)
        base = {"queue": "dash", "id": handle.id, "csrf_token": token, "priority": "0"}

        def post(status: int = 400, **fields: str) -> str:
            response = client.post("/job/change", data={**base, **fields})
            assert response.status_code == status, response.text
            assert "Traceback" not in response.text
            return response.text

        page = post(run_at="tomorrow-ish", arguments='{"a": 1, "b": 2}')
        assert "ISO time" in error_next_to(page, "run_at")
        assert "tomorrow-ish" in page
        assert '<details class="change" id="job-change"' in page
        assert "0 to 9" in error_next_to(post(priority="ten"), "priority")
        page = post(arguments='{"a": "x", "b": 2}')
        assert "valid integer" in error_next_to(page, "arguments")
        assert "&#34;x&#34;" in page  # what the user typed, escaped
        assert "Nothing to change" in error_next_to(post(arguments='{"a": 1, "b": 2}'), "form")
        assert await handle.info() == before  # nothing changed
        await handle.reschedule()
        await run_jobs(registry)
        late = post(409, run_at="now", arguments='{"a": 1, "b": 2}')
        assert "only scheduled or queued jobs" in error_next_to(late, "form")
        assert 'data-states="scheduled queued" hidden' in late


async def test_arguments_cannot_be_changed_without_the_registry(
    registry: Registry, redis_url: str
) -> None:
    declare_jobs(registry)
    handle = await registry.enqueue("add", {"a": 1, "b": 2}, delay=3600)
    app = create_app(redis_url, auth=None, environ={})
    with TestClient(app, follow_redirects=False) as client:
        page = client.get("/job", params={"queue": "dash", "id": handle.id})
        assert 'name="arguments"' not in page.text
        assert "can be changed when the dashboard runs with" in page.text
        token = client.cookies["jobmaster_csrf"]
        form = {"queue": "dash", "id": handle.id, "csrf_token": token}
        done = client.post("/job/change", data={**form, "priority": "4", "arguments": "{}"})
        assert done.status_code == 303
    job = await handle.info()
    assert (job.priority, job.arguments) == (4, {"a": 1, "b": 2})


async def test_enqueue_form_refuses_what_cannot_be_stored(registry: Registry) -> None:
    declare_jobs(registry)
    with client_for(registry) as client:
        token = csrf_of(client, "/enqueue")

        def post(job: str, arguments: str, **fields: str) -> str:
            data = {"job": job, "arguments": arguments, "csrf_token": token, **fields}
            response = client.post("/enqueue", data=data)
            assert response.status_code == 400, response.text
            assert "Traceback" not in response.text
            return response.text

        big = error_next_to(post("add", f'{{"a": {2**70}, "b": 1}}'), "arguments")
        assert "argument 'a' cannot be stored: it holds an integer beyond 64 bits" in big
        nan = error_next_to(post("tail", '{"lines": 1, "pause": NaN}'), "arguments")
        assert "pause: Input should be a finite number" in nan
        far = post("add", '{"a": 1, "b": 2}', delay="1e30")
        assert "delay= must be at most 315,360,000 seconds" in error_next_to(far, "delay")
    assert await registry.known_queues() == []  # nothing was enqueued
