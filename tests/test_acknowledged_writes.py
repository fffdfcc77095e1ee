"""min_replicas_acked on a server without replicas: every enqueue door says the jobs were
written but not acknowledged, over the fast paths and over redis-py alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from jobmaster import JobState, NotReplicated, RedisUnavailable, Registry


@pytest.fixture(params=["own connections", "redis-py"])
async def lonely_registry(
    request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
) -> AsyncIterator[Registry]:
    url = f"{redis_url}?min_replicas_acked=1&replicas_ack_timeout=0.05"
    registry = Registry(url, config_dir=tmp_path, environ={})
    if request.param == "redis-py":
        registry.redis_factory = lambda: Redis.from_url(redis_url)

    @registry.job()
    async def add(a: int, b: int) -> int:
        return a + b

    yield registry
    await registry.aclose()
    registry.close()


async def test_an_enqueue_no_replica_acknowledged_raises_not_replicated(
    lonely_registry: Registry,
) -> None:
    add = lonely_registry.jobs["add"]
    with pytest.raises(NotReplicated) as raised:
        await add.options(job_id="one").enqueue(1, 2)
    assert isinstance(raised.value, RedisUnavailable)
    assert raised.value.acked == 0
    assert [h.id for h in raised.value.handles] == ["one"]
    assert "0 of the 1 replicas" in str(raised.value)
    with pytest.raises(NotReplicated) as many:
        await add.enqueue_many([(1, 1), (2, 2), (3, 3)])
    assert len(many.value.handles) == 3
    with pytest.raises(NotReplicated) as sync:
        add.enqueue_sync(5, 5)
    written = [*raised.value.handles, *many.value.handles, *sync.value.handles]
    for handle in written:  # written all the same
        assert (await lonely_registry.get_job(handle.id)).state == JobState.QUEUED
