"""Every action added to the dashboard is refused in read-only mode and without the CSRF
token, and changes nothing then."""

from __future__ import annotations

import base64

from dashboard_support import TOKEN, client_for, csrf_of, failed_job_id

from jobmaster import JobState, Registry
from jobmaster.testing import run_jobs
from jobmaster_dashboard import AuthConfig

ACTIONS = [
    "/job/cancel",
    "/job/delete",
    "/job/change",
    "/enqueue",
    "/failed/retry",
    "/failed/delete",
    "/schedules/add",
    "/schedules/delete",
    "/group/cancel",
    "/group/retry",
]


async def snapshot(registry: Registry) -> object:
    jobs = {}
    for queue in await registry.known_queues():
        for state in JobState:
            for job in await registry.list_jobs(queue, state):
                jobs[job.id] = (await registry.get_job(job.id, queue)).model_dump()
    return jobs, [s.model_dump() for s in await registry.schedules()]


def forms_for(failed_id: str, waiting_id: str) -> dict[str, dict[str, str]]:
    return {
        "/job/cancel": {"queue": "dash", "id": waiting_id},
        "/job/delete": {"queue": "dash", "id": failed_id},
        "/job/change": {"queue": "dash", "id": waiting_id, "run_at": "now", "priority": "9"},
        "/enqueue": {"job": "echo", "arguments": '{"text": "x"}'},
        "/failed/retry": {"queue": "dash", "scope": "all"},
        "/failed/delete": {"queue": "dash", "scope": "all"},
        "/schedules/add": {"name": "new", "job": "echo", "every": "60", "args": '{"text": "x"}'},
        "/schedules/delete": {"name": "hourly"},
        "/group/cancel": {"queue": "dash", "id": "batch"},
        "/group/retry": {"queue": "dash", "id": "batch"},
    }


async def prepare(registry: Registry) -> dict[str, dict[str, str]]:
    failed_id = await failed_job_id(registry)
    waiting = await registry.enqueue("echo", {"text": "later"}, delay=600)
    batch = [registry.get("boom").call("b"), registry.get("echo").options(delay=600).call("c")]
    await registry.enqueue_group(batch, group_id="batch")
    await run_jobs(registry, include_scheduled=False)  # its first member fails
    await registry.add_schedule("hourly", "echo", every=3600, args={"text": "tick"})
    forms = forms_for(failed_id, waiting.id)
    assert sorted(forms) == sorted(ACTIONS)
    return forms


async def test_read_only_refuses_every_new_action(registry: Registry) -> None:
    forms = await prepare(registry)
    before = await snapshot(registry)
    with client_for(registry, read_only=True) as client:
        token = csrf_of(client)
        for action, form in forms.items():
            refused = client.post(action, data={**form, "csrf_token": token})
            assert refused.status_code == 403, action
        pages = {
            path: client.get(path).text
            for path in (
                "/",
                "/failed",
                "/schedules",
                "/enqueue",
                f"/job?queue=dash&id={forms['/job/cancel']['id']}",
                "/group?queue=dash&id=batch",
            )
        }
    assert await snapshot(registry) == before
    for path, text in pages.items():
        for hidden in ACTIONS:
            assert f'action="{hidden}"' not in text, (path, hidden)
        assert 'href="/enqueue"' not in text, path
    assert "read-only" in pages["/enqueue"]


async def test_every_new_action_needs_the_csrf_token(registry: Registry) -> None:
    forms = await prepare(registry)
    before = await snapshot(registry)
    with client_for(registry) as client:
        csrf_of(client)  # the browser has its cookie, the forged form not the token
        for action, form in forms.items():
            assert client.post(action, data=form).status_code == 403, action
            forged = client.post(action, data={**form, "csrf_token": "forged"})
            assert forged.status_code == 403, action
            assert "CSRF" in forged.text
    assert await snapshot(registry) == before


async def test_a_script_with_the_bearer_token_needs_no_csrf_field(registry: Registry) -> None:
    """The bearer token is never sent by a browser on its own: it is no ambient authority.
    Basic credentials and the session cookie are, so they still need the CSRF field."""
    failed_id = await failed_job_id(registry)
    auth = AuthConfig(token=TOKEN, user="ops", password="pw")
    basic = base64.b64encode(b"ops:pw").decode()
    form = {"queue": "dash", "scope": "selected", "id": failed_id}
    with client_for(registry, auth=auth) as client:
        ambient = client.post(
            "/failed/retry", headers={"authorization": f"Basic {basic}"}, data=form
        )
        assert ambient.status_code == 403
        assert (await registry.get_job(failed_id)).state is JobState.FAILED
        scripted = client.post(
            "/failed/retry", headers={"authorization": f"Bearer {TOKEN}"}, data=form
        )
        assert scripted.status_code == 303
    assert (await registry.get_job(failed_id)).state is JobState.QUEUED
    with client_for(registry, auth=auth, read_only=True) as client:
        refused = client.post(
            "/failed/retry", headers={"authorization": f"Bearer {TOKEN}"}, data=form
        )
        assert refused.status_code == 403  # read-only still refuses
