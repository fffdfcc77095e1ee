"""The overview (counts, oldest waiting job, workers, throughput chart) and the jobs list
(filters, paging)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from dashboard_support import ESCAPED, HOSTILE, client_for, declare_jobs, failed_job_id

from jobmaster import QueueStats, Registry
from jobmaster.testing import run_jobs
from jobmaster_dashboard.charts import throughput_chart
from tests.conftest import live_worker, wait_until

pytestmark = pytest.mark.deployments


async def test_overview_shows_counts_waiting_age_workers_and_a_chart(registry: Registry) -> None:
    await failed_job_id(registry)
    echo = registry.get("echo")
    await echo.enqueue_many([(f"t{i}",) for i in range(3)])
    await run_jobs(registry)
    await echo.options(queue="idle").enqueue("waiting")
    async with live_worker(registry, queues=["dash"]):
        await wait_until(registry.workers)
        with client_for(registry) as client:
            page = client.get("/").text
    dash = page.split('<tr data-queue="dash">', 1)[1].split("</tr>", 1)[0]
    assert '<a data-count="succeeded" href="/jobs?queue=dash&amp;state=succeeded">3</a>' in dash
    assert '<a data-count="failed" href="/jobs?queue=dash&amp;state=failed">1</a>' in dash
    assert '<td class="num" title="-">-</td>\n    <td class="num">1</td>\n' in dash
    idle = page.split('<tr data-queue="idle">', 1)[1].split("</tr>", 1)[0]
    assert '<a data-count="queued" href="/jobs?queue=idle&amp;state=queued">1</a>' in idle
    assert re.search(r'<td class="num" title="[^"]+ UTC">\d+ s</td>\s*<td class="num">0</td>', idle)
    assert "No live worker." not in page
    assert 'data-events-url="/events?counts=1"' in page
    chart = page.split('<figure class="chart" data-testid="chart" data-queue="dash">', 1)[1]
    chart = chart.split("</figure>", 1)[0]
    assert chart.count('<rect class="succeeded"') == 1  # all in the last minute
    assert chart.count('<rect class="failed"') == 1
    assert ": 3 succeeded, 1 failed</title>" in chart
    assert '<span class="legend-succeeded">3 succeeded</span>' in chart


def test_chart_geometry() -> None:
    start = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    stats = QueueStats(
        queue="q",
        counts={},
        oldest_waiting_at=None,
        bucket_seconds=60,
        bucket_starts=[start + timedelta(minutes=m) for m in range(4)],
        succeeded=[0, 7, 3, 0],
        failed=[0, 1, 0, 2],
    )
    chart = throughput_chart(stats)
    assert chart.highest == 10  # 8 rounded up to a tidy number
    assert [b.succeeded_height > 0 for b in chart.bars] == [False, True, True, False]
    tallest = chart.bars[1]
    assert tallest.succeeded_height == round((chart.plot_bottom - chart.plot_top) * 0.7, 2)
    assert tallest.failed_y + tallest.failed_height == tallest.succeeded_y
    assert chart.bars[3].title == "12:03 UTC: 0 succeeded, 2 failed"
    assert [text for _, text in chart.x_labels] == ["-4 min", "-2 min", "now"]
    assert (chart.total_succeeded, chart.total_failed) == (10, 3)
    empty = throughput_chart(stats.model_copy(update={"succeeded": [0] * 4, "failed": [0] * 4}))
    assert empty.highest == 1
    assert all(b.succeeded_height == 0 == b.failed_height for b in empty.bars)


async def test_jobs_list_filters_by_name_and_tag_newest_first(registry: Registry) -> None:
    declare_jobs(registry)
    tagged = await registry.get("echo").options(tags=["blue"]).enqueue("tagged")
    plain = await registry.enqueue("echo", {"text": "plain"})
    added = await registry.enqueue("add", {"a": 1, "b": 2}, tags=["blue"])
    with client_for(registry) as client:

        def listed(**params: str) -> list[str]:
            page = client.get("/jobs", params={"queue": "dash", "state": "queued", **params})
            assert page.status_code == 200
            return re.findall(r'<tr data-job-id="([^"]+)">', page.text)

        assert listed() == [added.id, plain.id, tagged.id]
        assert listed(name="echo") == [plain.id, tagged.id]
        assert listed(tag="blue") == [added.id, tagged.id]
        assert listed(name="echo", tag="blue") == [tagged.id]
        assert listed(name="nope") == []
        page = client.get("/jobs", params={"queue": "dash", "name": "echo", "tag": "blue"}).text
        assert 'value="echo"' in page
        assert 'value="blue"' in page
        assert 'data-list-filtered="yes"' in page
        assert '<span class="tag">blue</span>' in page


async def test_jobs_list_pages_with_offset_and_limit(registry: Registry) -> None:
    declare_jobs(registry)
    handles = await registry.get("echo").enqueue_many([(f"n{i}",) for i in range(5)])
    newest_first = [h.id for h in reversed(handles)]
    with client_for(registry) as client:

        def page(**params: str) -> str:
            return client.get("/jobs", params={"queue": "dash", "state": "queued", **params}).text

        first = page(limit="2")
        assert re.findall(r'data-job-id="([^"]+)"', first) == newest_first[:2]
        assert "1&ndash;2 of 5" in first
        assert (
            'href="/jobs?offset=2&amp;queue=dash&amp;state=queued&amp;limit=2" rel="next"' in first
        )
        assert 'rel="prev"' not in first
        last = page(limit="2", offset="4")
        assert re.findall(r'data-job-id="([^"]+)"', last) == newest_first[4:]
        assert 'rel="next"' not in last
        assert (
            'href="/jobs?offset=2&amp;queue=dash&amp;state=queued&amp;limit=2" rel="prev"' in last
        )
        assert re.findall(r'data-job-id="([^"]+)"', page(limit="2", page="2")) == newest_first[2:4]
        assert re.findall(r'data-job-id="([^"]+)"', page(limit="x", offset="-3")) == newest_first
        assert client.get("/jobs", params={"state": "nope"}).status_code == 400


async def test_new_views_escape_what_comes_from_redis(registry: Registry) -> None:
    job_id = await failed_job_id(registry, HOSTILE)
    await registry.get("echo").options(tags=["t"]).enqueue(HOSTILE)
    await registry.add_schedule("evil", "echo", every=60, args={"text": HOSTILE})
    with client_for(registry) as client:
        pages = [
            client.get("/job/live", params={"queue": "dash", "id": job_id}),
            client.get("/jobs", params={"queue": "dash", "state": "queued", "tag": "t"}),
            client.get("/jobs", params={"queue": "dash", "name": HOSTILE}),
            client.get("/failed", params={"queue": "dash"}),
            client.get("/schedules"),
            client.get("/enqueue", params={"job": HOSTILE}),
            client.get("/"),
        ]
        for page in pages:
            assert page.status_code == 200, page.url
            assert HOSTILE not in page.text, page.url
        for page in (pages[0], pages[2], pages[4]):  # arguments, a filter, a schedule's args
            assert ESCAPED in page.text, page.url
        notice = client.get("/failed", params={"done": "retried", "n": "1", "failed": HOSTILE})
        assert HOSTILE not in notice.text
        assert ESCAPED in notice.text
        unknown = client.get("/failed", params={"done": HOSTILE}).text
        assert HOSTILE not in unknown
        assert 'id="notice"' not in unknown
