"""Relations on the dashboard, read as HTML: the group forms' refusals, a large group's
pages of members, the groups of a queue, finding a group by id, and a dependency that is
no longer kept. (What a user sees in a browser is in test_relations_browser.py.)"""

from __future__ import annotations

import html
import re

from dashboard_support import client_for, csrf_of, declare_jobs

from jobmaster import GroupState, JobState, Registry
from jobmaster.testing import run_jobs
from jobmaster_dashboard.group_pages import MEMBERS_PER_PAGE


def text_of(page: str) -> str:
    """The page's main text, tags dropped and blanks squeezed (a progress bar's fallback
    text, which browsers do not show, left out)."""
    main = page.split("<main>", 1)[1].split("</main>", 1)[0]
    main = re.sub(r"<progress[^>]*>.*?</progress>", "", main)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", main))).strip()


def member_rows(page: str) -> list[str]:
    return re.findall(r'<tr data-job-id="([^"]+)">', page.split('class="members"', 1)[1])


async def test_the_group_forms_refuse_bad_input_with_a_message(registry: Registry) -> None:
    declare_jobs(registry)
    echo, boom = registry.get("echo"), registry.get("boom")
    done = await registry.enqueue_group([echo.call("a")], group_id="done")
    failing = await registry.enqueue_group([boom.call("b"), echo.call("c")], group_id="failing")
    await run_jobs(registry)
    assert (await done.info()).state is GroupState.SUCCEEDED
    assert (await failing.info()).state is GroupState.FAILED
    with client_for(registry) as client:
        token = csrf_of(client)

        def post(action: str, **fields: str) -> tuple[int, str]:
            answer = client.post(f"/group/{action}", data={**fields, "csrf_token": token})
            if answer.status_code == 303:
                return 303, text_of(client.get(answer.headers["location"]).text)
            return answer.status_code, text_of(answer.text)

        assert (
            client.post("/group/cancel", data={"queue": "dash", "id": "failing"}).status_code == 403
        )
        assert post("cancel", queue="dash") == (
            400,
            "Sorry Say which group: the form needs its queue and id.",
        )
        status, page = post("retry", queue="a b", id="failing")
        assert status == 400
        assert "'a b' is not a queue name" in page
        status, page = post("retry", queue="dash", id="nope")
        assert (status, page) == (
            404,
            "Sorry There is no group 'nope' in queue 'dash': it never existed, or it ended and "
            "was forgotten after the retention.",
        )
        status, page = post("cancel", queue="dash", id="done")
        assert status == 409
        assert "The group succeeded already: its callback was enqueued" in page
        assert (await done.info()).state is GroupState.SUCCEEDED

        status, page = post("retry", queue="dash", id="done")
        assert status == 303
        assert "No member of the group failed or was cancelled: nothing to retry." in page

        status, page = post("cancel", queue="dash", id="failing")
        assert status == 303
        assert "Cancelled the group: its members that had not ended are cancelled" in page
        assert "Cancel group" not in page
        assert "Retry failed members" not in page
        status, page = post("cancel", queue="dash", id="failing")
        assert (status, "The group was cancelled already." in page) == (303, True)
        status, page = post("retry", queue="dash", id="failing")
        assert status == 409
        assert "was cancelled; its members are not retried" in page
    info = await failing.info()
    assert info.state is GroupState.CANCELLED
    assert info.member_states == [JobState.FAILED, JobState.SUCCEEDED]  # nothing retried


async def test_a_large_group_lists_its_members_a_page_at_a_time(registry: Registry) -> None:
    declare_jobs(registry)
    echo = registry.get("echo")
    size = MEMBERS_PER_PAGE + 100
    group = await registry.enqueue_group([echo.call(str(n)) for n in range(size)], group_id="big")
    ids = [m.id for m in (await group.info()).members]
    await registry.handle(ids[3], "dash").cancel()
    with client_for(registry) as client:
        first = client.get("/group?queue=dash&id=big").text
        assert member_rows(first) == ids[:MEMBERS_PER_PAGE]
        assert f"Members ({size})" in text_of(first)
        assert f"1\u2013{MEMBERS_PER_PAGE} of {size}" in text_of(first)
        assert f'href="/group?queue=dash&amp;id=big&amp;offset={MEMBERS_PER_PAGE}"' in first
        assert f"1 of {size} ended: 0 succeeded, 0 failed, 1 cancelled" in text_of(first)
        assert re.search(r'data-count="queued" href="[^"]+">599</a>', first)

        second = client.get(f"/group?queue=dash&id=big&offset={MEMBERS_PER_PAGE}").text
        assert member_rows(second) == ids[MEMBERS_PER_PAGE:]
        assert f"{MEMBERS_PER_PAGE + 1}\u2013{size} of {size}" in text_of(second)
        assert 'rel="prev"' in second
        assert 'rel="next"' not in second

        cancelled = client.get("/group?queue=dash&id=big&state=cancelled").text
        assert member_rows(cancelled) == [ids[3]]
        assert "Members cancelled (1)" in text_of(cancelled)
        assert "Retry failed members (1)" in text_of(cancelled)

        refused = client.get("/group?queue=dash&id=big&state=bogus")
        assert refused.status_code == 400
        assert client.get("/group?queue=dash").status_code == 400


async def test_the_groups_of_a_queue_newest_first(registry: Registry) -> None:
    declare_jobs(registry)
    echo = registry.get("echo")
    for n in range(3):
        await registry.enqueue_group([echo.call(str(n)), echo.call("x")], group_id=f"batch-{n}")
    with client_for(registry) as client:
        page = client.get("/groups").text  # the queue that has groups
        listed = re.findall(r'<tr data-group-id="([^"]+)">', page)
        assert listed == ["batch-2", "batch-1", "batch-0"]
        assert "all 2 members succeed" in text_of(page)
        assert "0 of 2 ended" in text_of(page)

        short = client.get("/groups?queue=dash&limit=2").text
        assert re.findall(r'<tr data-group-id="([^"]+)">', short) == ["batch-2", "batch-1"]
        assert 'href="/groups?queue=dash&amp;limit=52"' in short

        assert 'href="/groups?queue=dash">Groups of dash</a>' in client.get("/jobs?queue=dash").text
        assert "No group kept in other." in text_of(client.get("/groups?queue=other").text)
        assert client.get("/groups?queue=a%20b").status_code == 400

        found = client.get("/jobs?id=batch-1")  # the header's box finds groups too
        assert found.headers["location"] == "/group?queue=dash&id=batch-1"
        assert client.get("/group?id=batch-1").headers["location"] == found.headers["location"]
        assert client.get("/jobs?id=nothing").status_code == 404


async def test_a_dependency_no_longer_kept_is_named_with_what_to_do(registry: Registry) -> None:
    declare_jobs(registry)
    first = await registry.get("boom").enqueue("x")
    waiting = await registry.get("echo").options(after=[first]).enqueue("after")
    await run_jobs(registry)
    assert await first.state() is JobState.FAILED
    with client_for(registry) as client:
        page = text_of(client.get(f"/job?queue=dash&id={waiting.id}").text)
        assert f"Blocked by {first.id} failed it failed: it waits until that job is retried" in page
        await registry.delete_job(first.id, "dash")
        page = text_of(client.get(f"/job?queue=dash&id={waiting.id}").text)
        assert (
            f"Blocked by {first.id} gone this job is no longer kept: cancel the waiting job" in page
        )
        assert f"Waits on (1) Job Queue Mode State Met {first.id} dash after gone no" in page
