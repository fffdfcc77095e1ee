"""Relations between jobs on the dashboard, in a real headless Chromium: a flow's
dependencies both ways on the job pages, a group's page and its actions, the groups of a
queue. The dashboard, the browser and the workers are browser_support.py's."""

from __future__ import annotations

import re

import redis
from browser_support import eventually, log_in, worker_process
from playwright.sync_api import Dialog, Locator, Page, expect

from jobmaster import Flow, GroupState, JobState, Registry

ALL_QUEUES = ("--queues", "emails,reports,media")


def cells(row: Locator) -> list[str]:
    return [text.strip() for text in row.locator("td").all_inner_texts()]


def related_row(page: Page, table: str, job_id: str) -> Locator:
    return page.get_by_test_id(table).locator(f'tr[data-related="{job_id}"]')


def test_a_flow_shows_each_jobs_dependencies_both_ways(
    page: Page, app: Registry, redis_url: str
) -> None:
    report, thumbnail, send = app.get("build_report"), app.get("thumbnail"), app.get("send_email")
    flow = Flow()
    extract = flow.add(report.call("sales", region="eu"), job_id="extract-sales")
    chart = flow.add(thumbnail.call("charts/sales.png"), job_id="chart-sales", after=[extract])
    flow.add(
        send.call("ana@example.com", "Sales report"),
        job_id="mail-sales",
        after_any=[extract, chart],
    )
    app.run_sync(app.enqueue_flow(flow))

    log_in(page)  # blocked jobs are counted on the overview like the other states
    expect(page.locator("table.queues thead")).to_contain_text("blocked")
    blocked = page.locator('tr[data-queue="media"] a[data-count="blocked"]')
    expect(blocked).to_have_text("1")
    blocked.click()
    expect(page).to_have_url(re.compile(r"/jobs\?queue=media&state=blocked$"))
    expect(page.locator('select[name="state"]')).to_have_value("blocked")
    page.get_by_role("link", name="chart-sales", exact=True).click()

    expect(page.locator("#job-state")).to_have_text("blocked")
    expect(page.get_by_test_id("blocked-by")).to_have_text(
        re.compile(r"^\s*extract-sales\s+queued\s+waiting for it to succeed\s*$")
    )
    assert cells(related_row(page, "upstream", "extract-sales")) == [
        "extract-sales",
        "reports",
        "after",
        "queued",
        "no",
    ]
    assert cells(related_row(page, "downstream", "mail-sales")) == [
        "mail-sales",
        "emails",
        "after_any",
        "blocked",
    ]

    related_row(page, "upstream", "extract-sales").get_by_role("link").click()  # another queue
    expect(page).to_have_url(re.compile(r"/job\?queue=reports&id=extract-sales$"))
    expect(page.get_by_test_id("upstream")).to_have_count(0)
    expect(page.get_by_test_id("blocked-by")).to_have_count(0)
    downstream = page.get_by_test_id("downstream").locator("tbody tr")
    expect(downstream).to_have_count(2)
    assert cells(related_row(page, "downstream", "chart-sales"))[1:] == [
        "media",
        "after",
        "blocked",
    ]
    related_row(page, "downstream", "mail-sales").get_by_role("link").click()

    expect(page).to_have_url(re.compile(r"/job\?queue=emails&id=mail-sales$"))
    waits = page.get_by_test_id("blocked-by").locator("li")
    expect(waits).to_have_count(2)
    expect(waits.nth(0)).to_have_text(re.compile(r"extract-sales\s+queued\s+waiting for it to end"))
    expect(waits.nth(1)).to_have_text(re.compile(r"chart-sales\s+blocked\s+waiting for it to end"))

    page.evaluate("window.__marker = 1")
    with worker_process(redis_url, *ALL_QUEUES):  # the flow runs with the page open
        expect(page.locator("#job-state")).to_have_text("succeeded", timeout=20_000)
        expect(page.get_by_test_id("blocked-by")).to_have_count(0)
        for job_id in ("extract-sales", "chart-sales"):
            row = related_row(page, "upstream", job_id)
            expect(row.locator("td").nth(3)).to_have_text("succeeded")
            expect(row.locator("td").nth(4)).to_have_text("yes")
    assert page.evaluate("window.__marker") == 1, "the page was reloaded, not updated"


def test_a_group_page_shows_progress_members_callback_and_retries_failed_members(
    page: Page, app: Registry, redis_url: str
) -> None:
    gate = "e2e:ledger-for-group"
    thumbnail, sync_ledger = app.get("thumbnail"), app.get("sync_ledger")
    group = app.run_sync(
        app.enqueue_group(
            [thumbnail.call("a.png"), thumbnail.call("b.png"), sync_ledger.call(gate)],
            then=app.get("send_email").call("team@example.com", "Thumbnails ready"),
            group_id="thumbs-2024",
        )
    )
    info = app.run_sync(group.info())
    members, callback_job = info.members, info.then
    assert callback_job is not None
    with worker_process(redis_url, *ALL_QUEUES):
        eventually(
            lambda: app.run_sync(group.info()).state is GroupState.FAILED,
            timeout=20,
            what="the group failed (its ledger member did)",
        )

        log_in(page)
        page.goto("/jobs?queue=media")
        page.get_by_role("link", name="Groups of media").click()
        row = page.locator('tr[data-group-id="thumbs-2024"]')
        expect(row.locator(".state")).to_have_text("failed")
        expect(row).to_contain_text("all 3 members succeed")
        expect(row).to_contain_text("3 of 3 ended")
        row.get_by_role("link", name="thumbs-2024").click()

        expect(page).to_have_url(re.compile(r"/group\?queue=media&id=thumbs-2024$"))
        expect(page.get_by_test_id("group-state")).to_have_text("failed")
        expect(page.get_by_test_id("group-policy")).to_have_text("all 3 members succeed")
        expect(page.get_by_test_id("group-progress")).to_have_text(
            re.compile(r"3 of 3 ended: 2 succeeded, 1 failed, 0 cancelled")
        )
        bar = page.get_by_test_id("group-progress").locator("progress")
        expect(bar).to_have_attribute("max", "3")
        expect(bar).to_have_attribute("value", "3")
        expect(page.locator('table.member-counts a[data-count="failed"]')).to_have_text("1")
        rows = page.locator("table.members tbody tr")
        expect(rows).to_have_count(3)
        shown = [cells(rows.nth(i)) for i in range(3)]
        assert shown == [
            ["0", members[0].id, "media", "succeeded"],
            ["1", members[1].id, "media", "succeeded"],
            ["2", members[2].id, "reports", "failed"],
        ]
        callback = page.get_by_test_id("group-callback")
        expect(callback).to_contain_text("blocked")
        expect(page.get_by_role("button", name="Cancel group")).to_be_visible()

        rows.nth(2).get_by_role("link").click()  # the failed member's page names its group
        expect(page).to_have_url(re.compile(rf"/job\?queue=reports&id={members[2].id}$"))
        expect(page.get_by_test_id("job-group")).to_have_text("thumbs-2024 (a member)")
        page.get_by_test_id("job-group").get_by_role("link").click()
        expect(page).to_have_url(re.compile(r"/group\?queue=media&id=thumbs-2024$"))

        page.get_by_test_id("group-callback").get_by_role("link").click()
        expect(page.get_by_test_id("job-group")).to_have_text("thumbs-2024 (its callback)")
        expect(page.get_by_test_id("blocked-by")).to_contain_text(
            "group thumbs-2024 failed the group failed"
        )
        page.get_by_test_id("job-group").get_by_role("link").click()

        with redis.Redis.from_url(redis_url) as client:
            client.set(gate, "up")  # the ledger is back: the retried member succeeds
        page.get_by_role("button", name="Retry failed members (1)").click()
        expect(page.locator("#notice")).to_have_text(
            "Retried 1 member: the group waits on them again."
        )
        eventually(
            lambda: app.run_sync(callback_job.state()) is JobState.SUCCEEDED,
            timeout=20,
            what="the group succeeded and its callback ran",
        )
    page.goto("/group?queue=media&id=thumbs-2024")
    expect(page.get_by_test_id("group-state")).to_have_text("succeeded")
    expect(page.get_by_test_id("group-progress")).to_have_text(
        re.compile(r"3 of 3 ended: 3 succeeded, 0 failed, 0 cancelled")
    )
    expect(page.get_by_test_id("group-callback").locator(".state")).to_have_text("succeeded")
    expect(page.locator("#group-actions")).to_have_count(0)  # nothing left to retry or cancel


def test_cancelling_a_group_cancels_its_members_and_callback(page: Page, app: Registry) -> None:
    later = app.get("thumbnail").options(delay=3600)
    group = app.run_sync(
        app.enqueue_group(
            [later.call(f"frames/{n}.png") for n in range(3)],
            complete_when="any",
            then=app.get("send_email").call("team@example.com", "Frames ready"),
            group_id="frames",
        )
    )
    log_in(page)
    page.get_by_role("link", name="Groups", exact=True).click()  # picks a queue with groups
    page.get_by_role("link", name="frames", exact=True).click()
    expect(page.get_by_test_id("group-state")).to_have_text("running")
    expect(page.get_by_test_id("group-policy")).to_have_text("any member succeeds")
    expect(page.locator("table.members .state")).to_have_text(["scheduled"] * 3)
    expect(page.get_by_role("button", name=re.compile("^Retry failed"))).to_have_count(0)

    asked: list[str] = []

    def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.get_by_role("button", name="Cancel group").click()
    expect(page.locator("#notice")).to_contain_text("Cancelled the group")
    assert [q.split("?")[0] for q in asked] == ["Cancel this group"]
    expect(page.get_by_test_id("group-state")).to_have_text("cancelled")
    expect(page.locator("table.members .state")).to_have_text(["cancelled"] * 3)
    expect(page.get_by_test_id("group-callback").locator(".state")).to_have_text("cancelled")
    expect(page.locator("#group-actions")).to_have_count(0)
    info = app.run_sync(group.info())
    assert info.state is GroupState.CANCELLED
    assert info.member_states == [JobState.CANCELLED] * 3

    # A hand-made POST for the cancelled group: refused with a message, nothing done.
    cookies = page.context.cookies()
    csrf = next(c["value"] for c in cookies if c["name"] == "jobmaster_csrf")
    refused = page.request.post(
        "/group/retry", form={"queue": "media", "id": "frames", "csrf_token": csrf}
    )
    assert refused.status == 409
    assert "was cancelled; its members are not retried" in refused.text()
    unknown = page.request.post(
        "/group/cancel", form={"queue": "media", "id": "nope", "csrf_token": csrf}
    )
    assert unknown.status == 404
    assert "There is no group &#39;nope&#39; in queue &#39;media&#39;" in unknown.text()
