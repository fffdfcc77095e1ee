"""min_replicas_acked on a server without replicas: every enqueue door says the jobs were
written but not acknowledged, over the fast paths and over redis-py alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis

from jobmaster import JobState, NotReplicated, RedisUnavailable, Registry
from jobmaster.embedded import EmbeddedRedis
from tests.conftest import (
    PROCAPP,
    command_calls,
    finish,
    start_worker,
    stop_process,
    wait_until,
)


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


async def test_a_worker_records_an_attempt_end_again_until_a_replica_has_it(
    tmp_path: Path,
) -> None:
    with EmbeddedRedis(options=["--repl-diskless-sync-delay", "0"]) as master:
        registry = Registry(master.url, config_dir=tmp_path, environ={})

        @registry.job()
        async def add(a: int, b: int) -> int:
            return a + b

        handle = await add.enqueue(2, 3)
        env = {"JOBMASTER_MIN_REPLICAS_ACKED": "1", "JOBMASTER_REPLICAS_ACK_TIMEOUT": "0.1"}
        worker = start_worker(PROCAPP, master.url, "--burst", env=env, log_level="warning")
        try:
            # written on the master, not acknowledged: the worker sends it again
            assert await handle.result(timeout=20) == 5
            raw = redis.Redis.from_url(master.url)
            await wait_until(lambda: command_calls(raw, "wait") >= 2, 20)
            raw.close()
            assert worker.poll() is None  # a burst worker, held by the unrecorded end
            of_master = ["--replicaof", "127.0.0.1", str(master.port)]
            with EmbeddedRedis(options=of_master):
                code, out = finish(worker, timeout=30)
        finally:
            stop_process(worker)
            await registry.aclose()
            registry.close()
    assert code == 0, out
    assert "record failed; retrying" in out
    assert "NotReplicated" in out
