"""The dashboard in a real headless Chromium, served by uvicorn, against real worker processes.

The dashboard runs as ``python -m jobmaster_dashboard --app e2e_app:registry`` on a free
loopback port of the test suite's private redis-server; jobs run in ``jobmaster worker``
processes; Chromium is the system's (Debian's ``chromium``, installed by ``scripts/setup``),
driven through Playwright. The screenshot test writes the README's pictures to
``docs/screenshots/`` when ``UPDATE_SCREENSHOTS=1`` is set (``make screenshots``), and to a
temporary directory otherwise, so that a test run leaves the tree as it found it.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
from browser_support import (
    APP,
    HERE,
    PASSWORD,
    USER,
    eventually,
    job_state,
    log_in,
    run_burst,
    worker_process,
)
from playwright.sync_api import Browser, Dialog, Page, expect

from jobmaster import JobState, Registry
from tests.conftest import ROOT, start_worker, stop_process

SCREENSHOTS = ROOT / "docs" / "screenshots"
HOSTILE_SCRIPT = "<script>window.__pwned=1</script>"
HOSTILE_IMG = '<img src=x onerror="window.__pwned=1">'

INJECTED = """() => document.querySelector('[onerror]') !== null
    || [...document.scripts].some(script => script.textContent.includes('__pwned'))"""
"""Whether the hostile markup became elements of the page."""

# -- the tests ------------------------------------------------------------------------------------


def test_login_is_required_and_the_overview_shows_queues(
    page: Page, browser: Browser, app: Registry, dashboard_url: str
) -> None:
    app.run_sync(app.enqueue("send_email", {"to": "ana@example.com", "subject": "Welcome"}))
    assert page.request.get("/", headers={"accept": "application/json"}).status == 401
    page.goto("/jobs?queue=emails")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fjobs%3Fqueue%3Demails$"))
    page.get_by_label("Token").fill("not-the-token")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("Wrong credentials.")).to_be_visible()

    log_in(page)
    assert page.url == f"{dashboard_url}/"
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="emails", exact=True))
    expect(row.locator('a[href*="state=queued"]')).to_have_text("1")
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))

    other = browser.new_context(base_url=dashboard_url)  # user and password, another browser
    try:
        tab = other.new_page()
        tab.goto("/workers")
        tab.get_by_label("User").fill(USER)
        tab.get_by_label("Password").fill(PASSWORD)
        tab.get_by_role("button", name="Log in").click()
        expect(tab).to_have_url(f"{dashboard_url}/workers")
        expect(tab.get_by_role("heading", name="Workers")).to_be_visible()
    finally:
        other.close()


def test_retrying_a_failed_job_shows_it_succeed_live(
    page: Page, app: Registry, redis_url: str
) -> None:
    gate = "e2e:ledger-up"
    job_id = app.run_sync(app.enqueue("sync_ledger", {"gate": gate})).id
    run_burst(redis_url, "reports")
    assert job_state(app, job_id) is JobState.FAILED

    log_in(page)
    page.get_by_role("link", name="Failed").click()
    expect(page.get_by_role("heading", name="reports 1 failed")).to_be_visible()
    page.get_by_role("link", name=job_id).click()
    expect(page).to_have_url(re.compile(r"/job\?queue=reports&id="))
    message = f"RuntimeError: ledger service unavailable ({gate} is not set)"
    expect(page.locator(".attempt .error")).to_have_text(message)
    traceback = page.locator(".attempt details pre")
    expect(traceback).to_contain_text("Traceback (most recent call last)")
    expect(traceback).to_contain_text("in sync_ledger")
    expect(traceback).to_contain_text(message)

    with redis.Redis.from_url(redis_url) as client:
        client.set(gate, "up")  # the ledger is back: the next attempt succeeds
    page.evaluate("window.__before_retry = 1")
    page.get_by_role("button", name="Retry").click()  # a POST that redirects to this page
    page.wait_for_function("window.__before_retry === undefined")  # the new page loaded
    state = page.locator("#job-state")
    expect(state).to_have_text(re.compile(r"^\s*(queued|active)\s*$"))
    page.evaluate("window.__marker = 1")

    run_burst(redis_url, "reports")  # the job runs only now, with the page open
    assert job_state(app, job_id) is JobState.SUCCEEDED
    expect(state).to_have_text(re.compile(r"^\s*succeeded\s*$"))
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
    assert len(app.run_sync(app.get_job(job_id)).attempts) == 2


def test_pausing_a_schedule(page: Page, app: Registry) -> None:
    app.run_sync(
        app.add_schedule("nightly-sales", "build_report", cron="0 3 * * *", args={"kind": "sales"})
    )
    app.run_sync(app.add_schedule("ledger-sync", "sync_ledger", every=900, args={"gate": "g"}))
    log_in(page)
    page.get_by_role("link", name="Schedules").click()
    row = page.get_by_role("row").filter(has_text="nightly-sales")
    expect(row.locator(".badge")).to_have_count(0)
    row.get_by_role("button", name="Pause").click()

    expect(row.locator(".badge")).to_have_text("paused")
    expect(row.get_by_role("button", name="Resume")).to_be_visible()
    assert app.run_sync(app.get_schedule("nightly-sales")).paused
    other = page.get_by_role("row").filter(has_text="ledger-sync")
    expect(other.get_by_role("button", name="Pause")).to_be_visible()
    assert not app.run_sync(app.get_schedule("ledger-sync")).paused


def test_pausing_and_resuming_a_queue(page: Page, app: Registry) -> None:
    app.run_sync(app.enqueue("send_email", {"to": "ana@example.com", "subject": "Welcome"}))
    log_in(page)
    row = page.locator('tr[data-queue="emails"]')
    expect(row.locator(".badge")).to_have_count(0)
    row.get_by_role("button", name="Pause").click()

    expect(page.locator("#notice")).to_contain_text("Paused the queue")
    expect(row.locator(".badge")).to_have_text("paused")
    expect(row.get_by_role("button", name="Resume")).to_be_visible()
    assert app.run_sync(app.paused_queues()) == ["emails"]
    other = page.locator('tr[data-queue="reports"]')
    expect(other.get_by_role("button", name="Pause")).to_be_visible()

    row.get_by_role("button", name="Resume").click()
    expect(page.locator("#notice")).to_contain_text("Resumed the queue")
    expect(row.locator(".badge")).to_have_count(0)
    expect(row.get_by_role("button", name="Pause")).to_be_visible()
    assert app.run_sync(app.paused_queues()) == []


def test_a_hostile_payload_is_shown_as_text(page: Page, app: Registry, redis_url: str) -> None:
    hostile = f"{HOSTILE_SCRIPT}{HOSTILE_IMG}"
    job_id = app.run_sync(app.enqueue("send_email", {"to": hostile, "subject": HOSTILE_IMG})).id
    run_burst(redis_url, "emails")
    assert job_state(app, job_id) is JobState.FAILED

    log_in(page)
    for path in (f"/job?queue=emails&id={job_id}", "/jobs?queue=emails&state=failed", "/failed"):
        page.goto(path)  # waits for the load event: an image's error handler has run by then
        main = page.locator("main")
        expect(main).to_contain_text(f"invalid address {hostile}")
        assert not page.evaluate(INJECTED), path
        assert page.evaluate("typeof window.__pwned") == "undefined", path
    page.goto(f"/job?queue=emails&id={job_id}")
    expect(page.locator("pre.json")).to_contain_text(f'"subject": {json.dumps(HOSTILE_IMG)}')

    # The check itself: the same markup, if it did reach the page as HTML, is caught (and
    # the content security policy keeps its handler from running).
    page.evaluate(
        "html => document.querySelector('main').insertAdjacentHTML('beforeend', html)", hostile
    )
    assert page.evaluate(INJECTED)


# -- screenshots ----------------------------------------------------------------------------------


def fill_with_realistic_data(app: Registry, redis_url: str) -> dict[str, str]:
    """Queues with succeeded, failed and scheduled jobs, and schedules; returns some job ids."""
    send_email, build_report = app.get("send_email"), app.get("build_report")
    people = ["ana", "bo", "chen", "dara", "eli", "fatima", "gus", "hana", "ivo", "june"]
    mails = [(f"{p}@example.com", "Your invoice for November") for p in people * 2]
    mails += [("maria.example.com", "Password reset"), ("sam@example.com", "Welcome")]
    app.run_sync(send_email.enqueue_many(mails))
    reports = [
        {"kind": kind, "region": region}
        for kind in ("sales", "inventory")
        for region in ("eu", "us", "apac")
    ]
    app.run_sync(build_report.enqueue_many(reports))
    failed = app.run_sync(build_report.enqueue("sales", region="latam"))
    app.run_sync(app.enqueue("sync_ledger", {"gate": "ledger:up"}))
    for hours in (1, 2, 6):
        app.run_sync(
            send_email.options(delay=3600 * hours).enqueue(f"team{hours}@example.com", "Reminder")
        )
    app.run_sync(build_report.options(delay=7200).enqueue("forecast", region="us"))
    run_burst(redis_url, "emails,reports")

    app.run_sync(
        app.add_schedule(
            "nightly-sales",
            "build_report",
            cron="0 3 * * *",
            args={"kind": "sales"},
            tz="Europe/Paris",
        )
    )
    app.run_sync(
        app.add_schedule(
            "weekly-digest",
            "send_email",
            cron="0 8 * * mon",
            args={"to": "team@example.com", "subject": "Weekly digest"},
        )
    )
    app.run_sync(app.add_schedule("ledger-sync", "sync_ledger", every=900, args={"gate": "up"}))
    app.run_sync(app.pause_schedule("weekly-digest"))
    return {"failed": failed.id}


def test_screenshots_of_the_main_pages(
    page: Page, app: Registry, redis_url: str, tmp_path: Path
) -> None:
    ids = fill_with_realistic_data(app, redis_url)
    target = SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def shoot(name: str, *, full_page: bool = False) -> None:
        path = target / f"{name}.png"
        page.screenshot(path=path, full_page=full_page)
        written.append(path)

    options = ("--queues", "media", "--concurrency", "2", "--heartbeat", "0.5")
    with worker_process(redis_url, *options):
        transcode = app.get("transcode")
        videos = [("keynote.mov", 60.0), ("launch-teaser.mov", 60.0)]
        running = app.run_sync(transcode.enqueue_many(videos))
        eventually(
            lambda: all(job_state(app, h.id) is JobState.ACTIVE for h in running),
            timeout=20,
            what="two transcodes active",
        )
        eventually(
            lambda: [w.busy for w in app.run_sync(app.workers())] == [2],
            timeout=10,
            what="the worker's heartbeat shows it busy",
        )
        app.run_sync(app.get("thumbnail").enqueue_many([(f"img/{n:03}.png",) for n in range(6)]))
        log_in(page)

        page.goto("/")
        media = page.get_by_role("row").filter(has=page.get_by_role("link", name="media"))
        expect(media.locator('a[href*="state=active"]')).to_have_text("2")
        expect(media.locator('a[href*="state=queued"]')).to_have_text("6")
        expect(page.locator("main table").nth(1)).to_contain_text("2 / 2")
        shoot("overview", full_page=True)

        page.goto("/jobs?queue=emails&state=succeeded")
        expect(page.get_by_role("row")).to_have_count(22)  # a header and 21 jobs
        shoot("jobs")

        page.goto(f"/job?queue=reports&id={ids['failed']}")
        expect(page.locator(".attempt details pre")).to_contain_text("in _load_rows")
        shoot("job-traceback", full_page=True)

        page.goto("/failed")
        expect(page.get_by_role("heading", name="emails 1 failed")).to_be_visible()
        expect(page.get_by_role("heading", name="reports 2 failed")).to_be_visible()
        shoot("failed")

        page.goto("/workers")
        expect(page.get_by_role("row")).to_have_count(2)
        expect(page.locator("main table")).to_contain_text("media")
        shoot("workers")

        page.goto("/schedules")
        expect(page.get_by_role("row")).to_have_count(4)
        expect(page.locator(".badge")).to_have_text("paused")
        shoot("schedules")

    for path in written:
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), path
        assert 10_000 < len(data) < 1_000_000, (path, len(data))


# -- the content security policy -------------------------------------------------------------------


def test_every_page_works_under_the_content_security_policy(
    page: Page, app: Registry, redis_url: str
) -> None:
    """No page needs an inline script: the live updates and the confirmations still work."""
    violations: list[str] = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', "
        "e => console.error('Content Security Policy violation: ' + e.violatedDirective))"
    )
    first = app.run_sync(app.enqueue("send_email", {"to": "ana.example.com", "subject": "Hi"}))
    log_in(page)

    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="emails", exact=True))
    expect(row.locator('a[href*="state=queued"]')).to_have_text("1")
    page.evaluate("window.__marker = 1")
    app.run_sync(app.enqueue("send_email", {"to": "bo@example.com", "subject": "Hi"}))
    expect(row.locator('a[href*="state=queued"]')).to_have_text("2")
    assert page.evaluate("window.__marker") == 1, "the overview was reloaded, not updated"

    page.goto(f"/job?queue=emails&id={first.id}")
    state = page.locator("#job-state")
    expect(state).to_have_text(re.compile(r"^\s*queued\s*$"))
    run_burst(redis_url, "emails")
    expect(state).to_have_text(re.compile(r"^\s*failed\s*$"))  # live
    expect(page.locator(".attempt .error")).to_contain_text("invalid address")

    for path in ("/jobs?queue=emails&state=succeeded", "/workers", "/schedules", "/enqueue"):
        page.goto(path)
        expect(page.locator("main")).to_be_visible()
    page.goto("/failed")
    asked: list[str] = []

    def answer(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", answer)
    page.get_by_role("button", name=re.compile(r"^Retry all")).click()
    eventually(lambda: asked, what="the confirmation (live.js) asked")
    assert job_state(app, first.id) is JobState.FAILED  # dismissed: nothing done
    assert violations == []

    # Markup that slipped into a page would not run its inline handler.
    page.evaluate(
        f"document.querySelector('main').insertAdjacentHTML('beforeend', {HOSTILE_IMG!r})"
    )
    eventually(lambda: violations, what="the policy refused the inline handler")
    assert page.evaluate("typeof window.__pwned") == "undefined"


def test_no_other_site_can_frame_the_dashboard(page: Page, dashboard_url: str) -> None:
    """The bulk buttons cannot be clickjacked: a framed dashboard page does not load."""
    page.goto("/login")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()  # the page itself
    page.set_content(f'<iframe src="{dashboard_url}/login"></iframe>', wait_until="load")
    frame = page.frames[1]
    assert frame.locator("form").count() == 0
    assert page.frame_locator("iframe").get_by_role("button", name="Log in").count() == 0


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[int]]]:
    """A webhook receiver on loopback that answers 500 to its first request, then 200."""
    answered: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            status = 500 if not answered else 200
            self.send_response(status)
            self.end_headers()
            answered.append(status)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/signups", answered
    server.shutdown()
    server.server_close()


def test_the_job_page_shows_its_notifications_and_each_try(
    page: Page, app: Registry, redis_url: str, receiver: tuple[str, list[int]]
) -> None:
    url, answered = receiver
    job_id = app.run_sync(app.enqueue("welcome", {"user": "ana"})).id
    worker = start_worker(
        APP, redis_url, "--queues", "emails", cwd=HERE, env={"E2E_WEBHOOK_URL": url}
    )
    try:
        tries = eventually(
            lambda: len(app.run_sync(app.get_job(job_id)).notifications) == 2 and answered,
            what="two tries of the webhook recorded",
        )
        assert tries == [500, 200]
    finally:
        stop_process(worker)

    log_in(page)
    page.goto(f"/job?queue=emails&id={job_id}")
    expect(
        page.get_by_role("heading", name=re.compile(r"^Notifications \(1 .*2 tries\)$"))
    ).to_be_visible()
    rows = page.locator("table.notifications tbody tr")
    expect(rows).to_have_count(2)
    first, second = rows.nth(0).locator("td"), rows.nth(1).locator("td")
    expect(first.nth(1)).to_have_text(url)
    expect(first.nth(2)).to_have_text("1")
    expect(first.nth(3)).not_to_be_empty()  # when it was tried
    expect(first.nth(4)).to_have_text("500")
    expect(first.nth(5)).to_have_text("HTTP 500 Internal Server Error (tried again later)")
    expect(second.nth(2)).to_have_text("2")
    expect(second.nth(4)).to_have_text("200")
    expect(second.nth(5)).to_have_text("delivered")
    expect(first.nth(0)).to_have_text(second.nth(0).inner_text())  # one delivery, two tries
