"""The failed jobs page: retry or delete the selected jobs, or all of a queue's."""

from __future__ import annotations

import asyncio

import pytest
from dashboard_support import client_for, csrf_of, declare_jobs

from jobmaster import JobNotFound, JobState, Registry
from jobmaster.testing import run_jobs
from jobmaster_dashboard import bulk
from tests.conftest import live_worker, wait_until


async def failed_jobs(registry: Registry, count: int, queue: str = "dash") -> list[str]:
    boom = registry.get("boom").options(queue=queue)
    handles = await boom.enqueue_many([{"text": f"n{i}"} for i in range(count)])
    await run_jobs(registry, queues=[queue])
    return [h.id for h in handles]


async def test_retry_and_delete_the_selected_jobs(registry: Registry) -> None:
    declare_jobs(registry)
    ids = await failed_jobs(registry, 4)
    with client_for(registry) as client:
        page = client.get("/failed")
        assert 'form="bulk-dash"' in page.text
        assert f'<input type="checkbox" name="id" value="{ids[0]}" form="bulk-dash"' in page.text
        token = client.cookies["jobmaster_csrf"]
        form = {"queue": "dash", "scope": "selected", "csrf_token": token}
        retried = client.post("/failed/retry", data={**form, "id": [ids[0], ids[1], "no-such"]})
        assert retried.status_code == 303
        notice = client.get(retried.headers["location"]).text
        assert "Retried 2 jobs." in notice
        assert "1 could not be retried: no-such." in notice
        for job_id in ids[:2]:
            assert (await registry.get_job(job_id)).state is JobState.QUEUED
        deleted = client.post("/failed/delete", data={**form, "id": [ids[2], ids[0]]})
        notice = client.get(deleted.headers["location"]).text
        assert "Deleted 1 job." in notice  # the other one is queued again, not finished
        assert f"1 could not be deleted: {ids[0]}." in notice
        assert (await registry.get_job(ids[3])).state is JobState.FAILED
        assert [j.id for j in await registry.list_jobs("dash", JobState.FAILED)] == [ids[3]]


async def test_retry_all_and_delete_all_of_a_queue(registry: Registry) -> None:
    declare_jobs(registry)
    ids = await failed_jobs(registry, 60)  # more than one batch
    others = await failed_jobs(registry, 2, queue="elsewhere")
    with client_for(registry) as client:
        token = csrf_of(client, "/failed")
        form = {"queue": "dash", "scope": "all", "csrf_token": token}
        retried = client.post("/failed/retry", data=form)
        assert "Retried 60 jobs." in client.get(retried.headers["location"]).text
        assert await registry.list_jobs("dash", JobState.FAILED) == []
        await run_jobs(registry, queues=["dash"])  # they fail again
        assert (await registry.count_jobs("dash"))[JobState.FAILED] == 60
        deleted = client.post("/failed/delete", data=form)
        assert "Deleted 60 jobs." in client.get(deleted.headers["location"]).text
        one_queue = client.get("/failed", params={"queue": "elsewhere"})
        assert "Failed jobs in elsewhere" in one_queue.text
        assert all(job_id in one_queue.text for job_id in others)
    assert (await registry.count_jobs("dash"))[JobState.FAILED] == 0
    assert len(await registry.list_jobs("elsewhere", JobState.FAILED)) == 2  # another queue
    for job_id in ids[:3]:
        with pytest.raises(JobNotFound):
            await registry.get_job(job_id, "dash")


async def test_one_failed_job_is_deleted_from_its_row(registry: Registry) -> None:
    declare_jobs(registry)
    [job_id] = await failed_jobs(registry, 1)
    with client_for(registry) as client:
        token = csrf_of(client, "/failed")
        form = {"queue": "dash", "id": job_id, "back": "failed", "csrf_token": token}
        deleted = client.post("/job/delete", data=form)
        assert deleted.status_code == 303
        assert deleted.headers["location"].startswith("/failed?")
        assert "No failed job." in client.get(deleted.headers["location"]).text


async def test_retry_all_retries_each_job_failed_at_the_click_once(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker runs the retried jobs (they fail again) while the button's request runs."""
    declare_jobs(registry)
    monkeypatch.setattr(bulk, "BATCH", 10)  # many rounds: the worker keeps up with them
    ids = await failed_jobs(registry, 200)
    with client_for(registry) as client:
        token = csrf_of(client, "/failed")
        form = {"queue": "dash", "scope": "all", "csrf_token": token}
        async with live_worker(registry, concurrency=20):
            retried = await asyncio.to_thread(client.post, "/failed/retry", data=form)
            page = client.get(retried.headers["location"]).text
            notice = page[page.index('id="notice"') :].split("</div>")[0]

            async def all_failed_again() -> bool:
                return (await registry.count_jobs("dash"))[JobState.FAILED] == len(ids)

            await wait_until(all_failed_again)
    assert "Retried 200 jobs." in notice
    attempts = [len((await registry.get_job(i, "dash")).attempts) for i in ids]
    assert attempts == [2] * len(ids)  # the first attempt and one retry each
