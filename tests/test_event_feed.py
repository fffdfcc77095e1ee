"""registry.events(): cancelled at any moment it stops at once; a corrupt entry is skipped."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from structlog.testing import capture_logs

from jobmaster import JobEvent, Registry
from tests.conftest import wait_until

pytestmark = pytest.mark.deployments


async def test_a_cancelled_feed_stops_at_once(registry: Registry) -> None:
    @registry.job()
    async def add(a: int, b: int) -> int:
        return a + b

    await add.enqueue(1, 1)
    rng = random.Random(14)
    slowest = 0.0
    for _ in range(200):  # cancelled at many moments: blocked, reading, between reads
        events = registry.events()

        async def read_all(feed: Any = events) -> None:
            async for _ in feed:
                pass

        reader = asyncio.ensure_future(read_all())
        await asyncio.sleep(rng.random() * 0.01)
        if rng.random() < 0.5:
            await add.enqueue(1, 1)
        started = time.monotonic()
        reader.cancel()
        done, _ = await asyncio.wait({reader}, timeout=2)
        slowest = max(slowest, time.monotonic() - started)
        assert done, "the feed went on after its task was cancelled"
        assert reader.cancelled()
        await events.aclose()
    assert slowest < 0.5


async def test_an_undecodable_entry_is_skipped_and_the_feed_goes_on(
    registry: Registry, raw_redis: redis.Redis
) -> None:
    @registry.job()
    async def add(a: int, b: int) -> int:
        return a + b

    await add.options(job_id="before").enqueue(1, 1)
    stream = registry.connection().store.keys.queue("default").events
    raw_redis.xadd(stream, {"d": b"\xff not json"})
    raw_redis.xadd(stream, {"other": "field"})
    raw_redis.xadd(stream, {"d": '[["x", "no-such-state"]]'})
    await add.options(job_id="after").enqueue(1, 1)

    seen: list[JobEvent] = []
    events = registry.events(since=datetime.now(UTC) - timedelta(seconds=5))

    async def read_all() -> None:
        async for event in events:
            seen.append(event)

    with capture_logs() as logs:
        reader = asyncio.ensure_future(read_all())
        try:
            await wait_until(lambda: any(e.job_id == "after" for e in seen), timeout=5)
        finally:
            reader.cancel()
            await asyncio.wait({reader}, timeout=2)
            await events.aclose()
    assert [e.job_id for e in seen] == ["before", "after"]
    skipped = [log for log in logs if log["event"].startswith("skipped event entries")]
    assert skipped
    assert skipped[-1]["total"] == 3
