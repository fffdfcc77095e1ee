"""Flow control on the dashboard: pausing and resuming queues from the overview, the Limits
section, jobs held back by a limit, and attempts a handler sent back with RateLimited."""

from __future__ import annotations

import asyncio
import re

from dashboard_support import client_for, csrf_of, declare_jobs

from jobmaster import Context, JobState, RateLimited, Registry
from jobmaster.store.types import LimitState
from jobmaster.testing import run_jobs
from jobmaster_dashboard.limits import MAX_KEYS_SHOWN, amount_text, queue_view, rate_text
from tests.conftest import live_worker, wait_until


def _row(page: str, queue: str) -> str:
    return page.split(f'<tr data-queue="{queue}"', 1)[1].split("</tr>", 1)[0]


async def test_a_queue_is_paused_and_resumed_from_the_overview(registry: Registry) -> None:
    declare_jobs(registry)
    await registry.enqueue("echo", {"text": "waits"})
    with client_for(registry) as client:
        token = csrf_of(client)
        row = _row(client.get("/").text, "dash")
        assert 'action="/queues/pause"' in row
        assert "badge queue-paused" not in row

        refused = client.post("/queues/pause", data={"queue": "dash"})
        assert refused.status_code == 403  # no CSRF token
        assert await registry.paused_queues() == []

        paused = client.post("/queues/pause", data={"queue": "dash", "csrf_token": token})
        assert paused.status_code == 303
        page = client.get(paused.headers["location"]).text
        assert "Paused the queue: workers claim nothing from it" in page
        row = _row(page, "dash")
        assert re.search(r'<span class="badge queue-paused"[^>]*>paused</span>', row)
        assert 'action="/queues/resume"' in row
        assert await registry.paused_queues() == ["dash"]

        again = client.post("/queues/pause", data={"queue": "dash", "csrf_token": token})
        assert "The queue was paused already." in client.get(again.headers["location"]).text

        resumed = client.post("/queues/resume", data={"queue": "dash", "csrf_token": token})
        page = client.get(resumed.headers["location"]).text
        assert "Resumed the queue: workers claim from it again." in page
        assert "badge queue-paused" not in _row(page, "dash")
        assert await registry.paused_queues() == []

        unknown = client.post("/queues/pause", data={"queue": "nope", "csrf_token": token})
        assert unknown.status_code == 400
        assert "There is no queue named &#39;nope&#39;. The queues: dash." in unknown.text
        invalid = client.post("/queues/pause", data={"queue": "a b", "csrf_token": token})
        assert invalid.status_code == 400
        assert "&#39;a b&#39; is not a queue name" in invalid.text
        empty = client.post("/queues/resume", data={"csrf_token": token})
        assert empty.status_code == 400
        assert "Say which queue" in empty.text
        assert await registry.paused_queues() == []


async def test_a_read_only_dashboard_shows_paused_queues_without_buttons(
    registry: Registry,
) -> None:
    declare_jobs(registry)
    await registry.enqueue("echo", {"text": "waits"})
    await registry.pause_queue("dash")
    with client_for(registry, read_only=True) as client:
        token = csrf_of(client)
        row = _row(client.get("/").text, "dash")
        assert "badge queue-paused" in row
        assert "/queues/" not in row
        refused = client.post("/queues/resume", data={"queue": "dash", "csrf_token": token})
        assert refused.status_code == 403
    assert await registry.paused_queues() == ["dash"]


async def test_limits_and_a_held_back_job_are_shown(registry: Registry) -> None:
    gate = asyncio.Event()

    @registry.job(queue="limited", max_running=1)
    async def one_at_a_time(n: int) -> int:
        await gate.wait()
        return n

    @registry.job(queue="limited", rate_limit="5/s", limit_key="{account}")
    async def call_api(account: str) -> str:
        return account

    first, second = await one_at_a_time.enqueue_many([(1,), (2,)])
    await call_api.enqueue("acme")
    async with live_worker(registry, queues=["limited"], concurrency=4):

        async def held() -> bool:
            job = await registry.get_job(second.id, queue="limited")
            return job is not None and job.held_back == "limit"

        await wait_until(held, timeout=10)
        with client_for(registry) as client:
            page = client.get("/").text
            assert '<h2 id="limits">Limits</h2>' in page
            limit = page.split('<tr data-limit="one_at_a_time"', 1)[1].split("</tr>", 1)[0]
            assert '<td class="num">1 / 1</td>' in limit
            held_link = "/jobs?queue=limited&amp;state=queued&amp;name=one_at_a_time"
            assert f'<a href="{held_link}">1</a>' in limit
            rated = page.split('<tr data-limit="call_api:acme"', 1)[1].split("</tr>", 1)[0]
            assert '<td class="num">-</td>\n    <td class="num">5/s</td>' in rated

            job_page = client.get("/job", params={"queue": "limited", "id": second.id}).text
            assert 'data-testid="held-back">waiting for room under its job' in job_page
            running_page = client.get("/job", params={"queue": "limited", "id": first.id}).text
            assert 'data-testid="held-back"' not in running_page

            listing = client.get("/jobs", params={"queue": "limited", "state": "queued"}).text
            row = listing.split(f'<tr data-job-id="{second.id}">', 1)[1].split("</tr>", 1)[0]
            assert ">held back</span>" in row
        gate.set()
        assert await second.result(timeout=10) == 2
    with client_for(registry) as client:
        job_page = client.get("/job", params={"queue": "limited", "id": second.id}).text
        assert 'data-testid="held-back"' not in job_page


async def test_jobs_waiting_for_resources_and_those_no_worker_could_run_are_shown(
    registry: Registry,
) -> None:
    gate = asyncio.Event()

    @registry.job(queue="hardware", resources={"gpu": 1})
    async def train(n: int) -> int:
        await gate.wait()
        return n

    @registry.job(queue="hardware", resources={"mem": "8G"})
    async def big(n: int) -> int:
        return n

    _, second = await train.enqueue_many([(1,), (2,)])  # the first takes the GPU
    too_big = await big.enqueue(1)
    async with live_worker(registry, queues=["hardware"], resources="gpu=1,mem=4G"):

        async def held() -> bool:
            jobs = [await registry.get_job(h.id, queue="hardware") for h in (second, too_big)]
            listed = await registry.workers()
            return bool(listed) and all(j is not None and j.held_back == "resources" for j in jobs)

        await wait_until(held, timeout=10)
        with client_for(registry) as client:
            page = client.get("/").text
            row = page.split('<tr data-resource-queue="hardware">', 1)[1].split("</tr>", 1)[0]
            assert '<td class="num">2</td>' in row
            link = (
                f'<a href="/job?queue=hardware&amp;id={too_big.id}"><code>{too_big.id}</code></a>'
            )
            assert f"1: {link} (mem=8G)" in row

            waiting = client.get("/job", params={"queue": "hardware", "id": second.id}).text
            assert "waiting for a worker with enough free resources (it needs gpu=1)" in waiting
            assert "no live worker" not in waiting
            stuck = client.get("/job", params={"queue": "hardware", "id": too_big.id}).text
            assert "(it needs mem=8G)" in stuck
            assert "no live worker of this queue offers that much" in stuck
        gate.set()
        assert await second.result(timeout=10) == 2


async def test_an_attempt_sent_back_with_rate_limited_is_shown_as_such(
    registry: Registry,
) -> None:
    @registry.job(queue="upstream")
    async def call_upstream(ctx: Context) -> int:
        if ctx.attempt == 1:
            raise RateLimited(0.01)  # the upstream API answered 429
        return ctx.attempt

    handle = await call_upstream.enqueue()
    await run_jobs(registry, queues=["upstream"])
    assert (await handle.info()).state is JobState.SUCCEEDED
    with client_for(registry) as client:
        page = client.get("/job", params={"queue": "upstream", "id": handle.id}).text
    first = page.split('<section class="attempt" id="attempt-1">', 1)[1].split("</section>", 1)[0]
    assert '<span class="state state-rate_limited">rate_limited</span>' in first
    assert "Sent back for later, without using a try: RateLimited:" in first
    assert 'class="error"' not in first
    assert "attempt 1 ended rate_limited (sent back for later, not a try)" in page
    assert '<span class="mark state-rate_limited"></span>' in page


def _state(key: str, running: int = 0, waiting: int = 0) -> LimitState:
    return LimitState(key=key, max_running=2, rate="5/10000", running=running, waiting=waiting)


def test_limit_rows_list_the_keys_that_hold_jobs_back_first_and_sum_the_rest() -> None:
    keys = [_state(f"job:{n:03}", running=n % 2) for n in range(MAX_KEYS_SHOWN + 5)]
    keys.append(_state("job:busy", running=2, waiting=3))
    view = queue_view("q", keys, {"job"})
    assert [r.key for r in view.rows[:2]] == ["job:busy", "job:001"]
    assert len(view.rows) == MAX_KEYS_SHOWN
    assert view.rows[0].running == "2 / 2"
    assert view.rows[0].rate == "5 per 10 s"
    assert view.rows[0].job_name == "job"
    assert view.rows[0].held_back == 3
    assert (view.more, view.more_running, view.more_held_back) == (6, 0, 0)


def test_rates_read_as_people_write_them() -> None:
    assert rate_text("5/1000") == "5/s"
    assert rate_text("100/60000") == "100/min"
    assert rate_text("1000/3600000") == "1000/h"
    assert rate_text("3/500") == "3 per 500 ms"
    assert rate_text("2/90000") == "2 per 1.5 min"
    assert rate_text(None) == "-"


def test_resource_amounts_read_as_jobs_declare_them() -> None:
    assert amount_text(1.0) == "1"
    assert amount_text(0.5) == "0.5"
    assert amount_text(8 * 1024**3) == "8G"
    assert amount_text(1536 * 1024**2) == "1536M"  # exact, in the largest whole unit
    assert amount_text(1000.0) == "1000"
