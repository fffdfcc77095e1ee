"""Adding a schedule from the schedules page, and deleting one."""

from __future__ import annotations

import html

import pytest
from dashboard_support import ESCAPED, HOSTILE, client_for, csrf_of, declare_jobs
from starlette.testclient import TestClient

from jobmaster import Registry, ScheduleNotFound
from jobmaster_dashboard import create_app


def error_next_to(page: str, field: str) -> str:
    marker = f'<span class="field-error" id="error-{field}" data-testid="error-{field}">'
    assert marker in page, f"no error shown for {field}"
    return html.unescape(page.split(marker, 1)[1].split("</span>", 1)[0])


async def test_add_a_cron_and_an_interval_schedule(registry: Registry) -> None:
    declare_jobs(registry)
    with client_for(registry) as client:
        token = csrf_of(client, "/schedules")
        added = client.post(
            "/schedules/add",
            data={
                "name": "morning",
                "job": "add",
                "cron": "0 8 * * mon-fri",
                "args": '{"a": 1, "b": 2}',
                "tz": "Europe/Paris",
                "catch_up": "skip",
                "queue": "reports",
                "csrf_token": token,
            },
        )
        assert added.status_code == 303
        assert "Added the schedule." in client.get(added.headers["location"]).text
        interval = client.post(
            "/schedules/add",
            data={"name": "often", "job": "echo", "every": "90", "args": '{"text": "hi"}',
                  "tz": "", "catch_up": "latest", "csrf_token": token},
        )  # fmt: skip
        assert interval.status_code == 303
        page = client.get("/schedules").text
        assert "<code>0 8 * * mon-fri</code> Europe/Paris" in page
        assert "every 90.0 s" in page
    morning = await registry.get_schedule("morning")
    assert (morning.job, morning.queue, morning.args) == ("add", "reports", {"a": 1, "b": 2})
    assert (morning.tz, morning.catch_up, morning.next_run_at is not None) == (
        "Europe/Paris", "skip", True,
    )  # fmt: skip
    assert (await registry.get_schedule("often")).every == 90


async def test_schedule_errors_are_shown_next_to_fields(registry: Registry) -> None:
    declare_jobs(registry)
    await registry.add_schedule("taken", "echo", every=60, args={"text": "x"})
    with client_for(registry) as client:
        token = csrf_of(client, "/schedules")
        good = {"name": "new", "job": "add", "cron": "0 3 * * *", "args": '{"a": 1, "b": 2}',
                "tz": "UTC", "catch_up": "latest", "csrf_token": token}  # fmt: skip

        def post(**fields: str) -> str:
            response = client.post("/schedules/add", data={**good, **fields})
            assert response.status_code == 400, response.text
            assert "Traceback" not in response.text
            return response.text

        assert "already" in error_next_to(post(name="taken"), "name")
        assert "schedule name" in error_next_to(post(name="no spaces please"), "name")
        assert "choose a job" in error_next_to(post(job=""), "job")
        assert "cron expression" in error_next_to(post(cron="every day"), "cron")
        assert "one of them" in error_next_to(post(every="60"), "cron")
        assert "one of them" in error_next_to(post(cron=""), "cron")
        assert ">= 1" in error_next_to(post(cron="", every="0.5"), "every")
        assert "unknown timezone" in error_next_to(post(tz="Mars/Olympus"), "tz")
        assert "b: Field required" in error_next_to(post(args='{"a": 1}'), "args")
        assert "JSON" in error_next_to(post(args="{"), "args")
        assert "queue" in error_next_to(post(queue="bad queue"), "queue")
        assert "choose one of" in error_next_to(post(catch_up="never"), "catch_up")
        page = post(args=f'{{"a": "{HOSTILE}", "b": 1}}')
        assert HOSTILE not in page
        assert ESCAPED in page
        assert 'value="0 3 * * *"' in page  # the user's input is kept
    assert [s.name for s in await registry.schedules()] == ["taken"]


async def test_delete_a_schedule(registry: Registry) -> None:
    declare_jobs(registry)
    await registry.add_schedule("hourly", "echo", every=3600, args={"text": "tick"})
    with client_for(registry) as client:
        token = csrf_of(client, "/schedules")
        assert 'action="/schedules/delete"' in client.get("/schedules").text
        deleted = client.post("/schedules/delete", data={"name": "hourly", "csrf_token": token})
        assert deleted.status_code == 303
        assert "Deleted the schedule." in client.get(deleted.headers["location"]).text
        missing = client.post("/schedules/delete", data={"name": "hourly", "csrf_token": token})
        assert missing.status_code == 404
    with pytest.raises(ScheduleNotFound):
        await registry.get_schedule("hourly")


async def test_no_schedule_form_without_job_names(redis_url: str) -> None:
    app = create_app(redis_url, auth=None, environ={})
    with TestClient(app, follow_redirects=False) as client:
        page = client.get("/schedules")
        assert "knows no jobs to schedule" in page.text
        assert 'action="/schedules/add"' not in page.text
