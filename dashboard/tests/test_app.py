"""The dashboard against a real Redis: real jobs enqueued and run, pages read as a user would."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from dashboard_support import (
    HOSTILE,
    TOKEN,
    client_for,
    csrf_of,
    declare_jobs,
    failed_job_id,
)
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from jobmaster import JobState, Registry
from jobmaster.testing import run_jobs
from jobmaster_dashboard import AuthConfig, AuthError, create_app

pytestmark = pytest.mark.deployments


def test_credentials_are_required_unless_turned_off(redis_url: str) -> None:
    with pytest.raises(AuthError, match="JOBMASTER_DASHBOARD_TOKEN"):
        create_app(redis_url, environ={})
    with pytest.raises(AuthError, match="both"):
        create_app(redis_url, environ={"JOBMASTER_DASHBOARD_USER": "admin"})
    app = create_app(redis_url, environ={"JOBMASTER_DASHBOARD_TOKEN": "abc"})
    assert app.state.auth == AuthConfig(token="abc")
    assert create_app(redis_url, auth=None).state.auth is None


async def test_pages_need_credentials(registry: Registry) -> None:
    with client_for(registry, auth=AuthConfig(token=TOKEN, user="admin", password="pw")) as client:
        refused = client.get("/")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Basic")
        browser = client.get("/jobs?queue=dash", headers={"accept": "text/html"})
        assert browser.status_code == 303
        assert browser.headers["location"] == "/login?next=%2Fjobs%3Fqueue%3Ddash"
        assert client.get("/", headers={"authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
        basic = base64.b64encode(b"admin:pw").decode()
        assert client.get("/", headers={"authorization": f"Basic {basic}"}).status_code == 200
        wrong = base64.b64encode(b"admin:nope").decode()
        assert client.get("/", headers={"authorization": f"Basic {wrong}"}).status_code == 401


async def test_login_form_sets_a_session_cookie(registry: Registry) -> None:
    with client_for(registry, auth=TOKEN) as client:
        token = csrf_of(client, "/login")
        assert client.post("/login", data={"token": TOKEN}).status_code == 403  # no CSRF
        bad = client.post("/login", data={"token": "nope", "csrf_token": token})
        assert bad.status_code == 401
        assert "Wrong credentials" in bad.text
        good = client.post("/login", data={"token": TOKEN, "csrf_token": token, "next": "/jobs"})
        assert good.status_code == 303
        assert good.headers["location"] == "/jobs"
        assert client.get("/").status_code == 200  # the session cookie now
        offsite = client.post(
            "/login", data={"token": TOKEN, "csrf_token": token, "next": "//evil.example"}
        )
        assert offsite.headers["location"] == "/"
        client.post("/logout", data={"csrf_token": token})
        assert client.get("/").status_code == 401


async def test_pages_show_real_jobs_and_attempts(registry: Registry) -> None:
    failed_id = await failed_job_id(registry, "first")
    done = await registry.enqueue("echo", {"text": "hello"})
    await registry.add_schedule("hourly", "echo", every=3600, args={"text": "tick"})
    await run_jobs(registry)
    with client_for(registry) as client:
        overview = client.get("/")
        assert overview.status_code == 200
        assert 'href="/jobs?queue=dash&amp;state=failed">1</a>' in overview.text
        listed = client.get("/jobs", params={"queue": "dash", "state": "succeeded"})
        assert done.id in listed.text
        assert failed_id not in listed.text
        page = client.get("/job", params={"queue": "dash", "id": failed_id})
        assert page.status_code == 200
        for expected in ("ValueError", "bad input first", "about to fail", "Traceback", "0.5"):
            assert expected in page.text
        job = await registry.get_job(failed_id)
        attempt = job.attempts[0]
        assert attempt.worker_id in page.text
        assert attempt.hostname in page.text
        assert str(attempt.pid) in page.text
        found = client.get("/jobs", params={"id": done.id})
        assert found.status_code == 303
        assert found.headers["location"] == f"/job?queue=dash&id={done.id}"
        assert client.get("/jobs", params={"id": "no-such-job"}).status_code == 404
        assert client.get("/job", params={"queue": "dash", "id": "nope"}).status_code == 404
        failed = client.get("/failed")
        assert failed_id in failed.text
        assert 'action="/job/retry"' in failed.text
        schedules = client.get("/schedules")
        assert "hourly" in schedules.text
        assert "every 3600.0 s" in schedules.text
        assert client.get("/workers").status_code == 200
        assert client.get("/static/style.css").status_code == 200


async def test_everything_from_redis_is_escaped(registry: Registry) -> None:
    failed_id = await failed_job_id(registry, HOSTILE)
    with client_for(registry) as client:
        pages = [
            client.get("/job", params={"queue": "dash", "id": failed_id}),
            client.get("/jobs", params={"queue": "dash", "state": "failed"}),
            client.get("/failed"),
        ]
        for page in pages:
            assert page.status_code == 200
            assert HOSTILE not in page.text
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


async def test_retry_needs_a_valid_csrf_token(registry: Registry) -> None:
    failed_id = await failed_job_id(registry)
    form = {"queue": "dash", "id": failed_id}
    with client_for(registry) as client:
        token = csrf_of(client)
        assert client.post("/job/retry", data=form).status_code == 403
        forged = client.post("/job/retry", data={**form, "csrf_token": "forged"})
        assert forged.status_code == 403
        assert (await registry.get_job(failed_id)).state is JobState.FAILED
        done = client.post("/job/retry", data={**form, "csrf_token": token})
        assert done.status_code == 303
        assert (await registry.get_job(failed_id)).state is JobState.QUEUED
    await run_jobs(registry)
    assert len((await registry.get_job(failed_id)).attempts) == 2
    ok = await registry.enqueue("echo", {"text": "fine"})
    await run_jobs(registry)
    with client_for(registry) as client:
        token = csrf_of(client)
        refused = client.post(
            "/job/retry", data={"queue": "dash", "id": ok.id, "csrf_token": token}
        )
        assert refused.status_code == 409  # only failed or cancelled jobs are retried
        assert "only failed or cancelled" in refused.text


async def test_read_only_hides_forms_and_refuses_posts(registry: Registry) -> None:
    failed_id = await failed_job_id(registry)
    await registry.add_schedule("hourly", "echo", every=3600, args={"text": "tick"})
    with client_for(registry, read_only=True) as client:
        token = csrf_of(client)
        for page in ("/failed", "/schedules", f"/job?queue=dash&id={failed_id}"):
            text = client.get(page).text
            assert "<button>Retry</button>" not in text
            assert "<button>Pause</button>" not in text
        for action, data in [
            ("/job/retry", {"queue": "dash", "id": failed_id}),
            ("/schedules/pause", {"name": "hourly"}),
            ("/schedules/trigger", {"name": "hourly"}),
        ]:
            assert client.post(action, data={**data, "csrf_token": token}).status_code == 403
    assert (await registry.get_job(failed_id)).state is JobState.FAILED
    assert not (await registry.get_schedule("hourly")).paused


async def test_schedules_pause_resume_and_trigger(registry: Registry) -> None:
    declare_jobs(registry)
    await registry.add_schedule("hourly", "echo", every=3600, args={"text": "tick"})
    with client_for(registry) as client:
        token = csrf_of(client)
        paused = client.post("/schedules/pause", data={"name": "hourly", "csrf_token": token})
        assert paused.status_code == 303
        assert (await registry.get_schedule("hourly")).paused
        assert "<button>Resume</button>" in client.get("/schedules").text
        client.post("/schedules/resume", data={"name": "hourly", "csrf_token": token})
        assert not (await registry.get_schedule("hourly")).paused
        triggered = client.post("/schedules/trigger", data={"name": "hourly", "csrf_token": token})
        assert triggered.status_code == 303
        assert triggered.headers["location"].startswith("/job?queue=dash&id=")
        missing = client.post("/schedules/pause", data={"name": "nope", "csrf_token": token})
        assert missing.status_code == 404


async def test_links_follow_the_mount_point(registry: Registry) -> None:
    declare_jobs(registry)
    handle = await registry.enqueue("echo", {"text": "hi"})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield  # Starlette does not run a mounted app's lifespan: close what it opened
        await registry.aclose()

    dashboard = create_app(registry, auth=TOKEN)
    host = Starlette(routes=[Mount("/ops/jobs", app=dashboard)], lifespan=lifespan)
    with TestClient(host, follow_redirects=False) as client:
        login = client.get("/ops/jobs/", headers={"accept": "text/html"})
        assert login.headers["location"] == "/ops/jobs/login?next=%2F"
        page = client.get("/ops/jobs/", headers={"authorization": f"Bearer {TOKEN}"})
        assert 'href="/ops/jobs/static/style.css"' in page.text
        found = client.get(
            "/ops/jobs/jobs", params={"id": handle.id}, headers={"authorization": f"Bearer {TOKEN}"}
        )
        assert found.headers["location"] == f"/ops/jobs/job?queue=dash&id={handle.id}"


def test_an_unreachable_redis_is_a_503_page() -> None:
    app = create_app("redis://127.0.0.1:1/0", auth=None, environ={})
    with TestClient(app) as client:
        page = client.get("/")
    assert page.status_code == 503
    assert "did not answer" in page.text
