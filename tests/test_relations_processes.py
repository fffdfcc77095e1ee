"""Relations between jobs with real worker processes and faults: a large random DAG while
workers are SIGKILLed, a group of 500 finished by three workers at once, a relay delivered
twice, a flow whose enqueue Redis dies under. The tests marked ``deployments`` also run on
the 3-master cluster, where the queues ``flows`` and ``right`` lie on two masters."""

from __future__ import annotations

import asyncio
import importlib
import random
import signal
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import pytest

from jobmaster import AttemptOutcome, Flow, JobHandle, JobState, Registry
from jobmaster.embedded import EmbeddedRedis
from jobmaster.relay import Relay
from tests.conftest import ROOT, start_worker, stop_process, wait_until

APP = "apps.flowapp:registry"


@pytest.fixture
async def app(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Registry]:
    monkeypatch.setenv("JOBMASTER_REDIS_URL", redis_url)
    from tests.apps import flowapp

    flowapp = importlib.reload(flowapp)
    yield flowapp.registry
    await flowapp.registry.aclose()


def worker(redis_url: str, *args: str) -> Any:
    return start_worker(
        APP, redis_url, "--lease", "2", *args, cwd=ROOT / "tests", log_level="warning"
    )


@contextmanager
def workers(redis_url: str, count: int, *args: str) -> Iterator[list[Any]]:
    processes = [worker(redis_url, *args) for _ in range(count)]
    try:
        yield processes
    finally:
        for process in processes:
            stop_process(process)


async def _all_final(app: Registry, handles: Sequence[JobHandle[Any]]) -> bool:
    for handle in handles:
        if not (await handle.state()).is_final:
            return False
    return True


@pytest.mark.deployments
async def test_a_random_dag_runs_in_order_while_workers_are_killed(
    app: Registry, redis_url: str
) -> None:
    node, far_node = app.get("node"), app.get("far_node")
    rng = random.Random(15)
    flow = Flow()
    handles: list[JobHandle[Any]] = []
    deps: dict[str, list[JobHandle[Any]]] = {}
    for n in range(1000):
        chosen = rng.sample(handles, min(len(handles), rng.randint(0, 3)))
        handler = far_node if rng.random() < 0.2 else node
        handle = flow.add(handler.call(n, pause=0.002), after=chosen)  # type: ignore[attr-defined]
        deps[handle.id] = chosen
        handles.append(handle)
    await app.enqueue_flow(flow)
    with workers(redis_url, 3, "--concurrency", "8") as processes:
        for victim in (0, 1):
            target = 150 * (victim + 1)
            await wait_until(lambda t=target: _succeeded_at_least(app, t), timeout=60)
            stop_process(processes[victim], signal.SIGKILL)
            processes[victim] = worker(redis_url, "--concurrency", "8")
        await wait_until(lambda: _all_final(app, handles), timeout=120, interval=0.2)
    infos = {h.id: await h.info() for h in handles}
    for handle in handles:
        job = infos[handle.id]
        assert job.state is JobState.SUCCEEDED, job
        succeeded = [a for a in job.attempts if a.outcome is AttemptOutcome.SUCCEEDED]
        assert len(succeeded) == 1, job.attempts
        assert all(
            a.outcome in (AttemptOutcome.SUCCEEDED, AttemptOutcome.LOST) for a in job.attempts
        )
        for dep in deps[handle.id]:
            finished = next(
                a.finished_at
                for a in infos[dep.id].attempts
                if a.outcome is AttemptOutcome.SUCCEEDED
            )
            assert finished is not None
            assert all(a.started_at >= finished for a in job.attempts), (handle.id, dep.id)


async def _succeeded_at_least(app: Registry, n: int) -> bool:
    done = 0
    for queue in ("flows", "right"):
        done += (await app.count_jobs(queue))[JobState.SUCCEEDED]
    return done >= n


@pytest.mark.deployments
async def test_a_group_of_500_calls_back_once_over_three_workers(
    app: Registry, redis_url: str
) -> None:
    member, collect = app.get("member"), app.get("collect")
    group = await app.enqueue_group(
        [member.call() for _ in range(500)],  # type: ignore[attr-defined]
        then=collect.call(),  # type: ignore[attr-defined]
    )
    with workers(redis_url, 3, "--concurrency", "16"):
        results = await group.results(timeout=90)
        info = await group.info()
        assert info.then is not None
        assert await info.then.result(timeout=30) == list(range(500))
    assert results == list(range(500))
    callback = await info.then.info()
    assert [a.outcome for a in callback.attempts] == [AttemptOutcome.SUCCEEDED]


@pytest.mark.deployments
async def test_a_relay_message_applied_twice_counts_once(app: Registry, redis_url: str) -> None:
    node, far_node = app.get("node"), app.get("far_node")
    first = await node.options(delay=3600).enqueue(1)  # type: ignore[attr-defined]
    dependents = [
        await far_node.options(after_any=[first]).enqueue(n)  # type: ignore[attr-defined]
        for n in range(5)
    ]
    await first.cancel()  # its end is news for the queue "right", in the outbox of "flows"
    store = app.connection().store
    relay = Relay(store, 60_000, lease_ms=200)
    # a deliverer applies the news and dies before acknowledging it
    taken = await store.relations.claim("flows", limit=100, lease_ms=200, retention_ms=60_000)
    assert len(taken) == 1
    for _, raw in taken:
        await store.relations.relate("right", raw)
    assert await _queued(app, "right", 5)
    assert await relay.deliver("flows") == 0  # not due again yet
    await asyncio.sleep(0.25)  # the lease of the dead deliverer passes
    assert await relay.deliver("flows") == 1  # delivered again: applied once more
    assert await store.relations.pending("flows") == 0
    with workers(redis_url, 2):
        await wait_until(lambda: _all_final(app, dependents), timeout=30)
    for handle in dependents:
        job = await handle.info()
        assert job.state is JobState.SUCCEEDED
        assert len(job.attempts) == 1


async def _queued(app: Registry, queue: str, n: int) -> bool:
    return (await app.count_jobs(queue))[JobState.QUEUED] == n


async def test_a_flow_is_written_all_or_nothing_when_redis_dies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(4)
    with EmbeddedRedis(appendonly=True) as server:
        for attempt in range(6):
            monkeypatch.setenv("JOBMASTER_REDIS_URL", server.url)
            from tests.apps import flowapp

            app = importlib.reload(flowapp).registry
            flow = Flow()
            previous: list[JobHandle[Any]] = []
            for n in range(400):
                handler = app.get("far_node" if n % 3 == 0 else "node")
                previous.append(flow.add(handler.call(n), after=previous[-2:]))  # type: ignore[attr-defined]
            task = asyncio.ensure_future(app.enqueue_flow(flow))
            await asyncio.sleep(rng.uniform(0, 0.05))
            server.kill()
            with suppress(Exception):
                await task
            await app.aclose()
            server.restart()
            app = importlib.reload(flowapp).registry
            store = app.connection().store
            for queue in ("flows", "right"):
                # what the producer could not deliver, also what it had taken when Redis
                # died (a worker would take that once its lease is over)
                pending = await store.redis.zrange(store.keys.queue(queue).relay_due, 0, -1)
                await Relay(store, 60_000).deliver(queue, [p.decode() for p in pending])
            written = [await store.relations.existing(h.queue, [h.id]) for h in previous]
            count = sum(w[0] for w in written)
            assert count in (0, 400), (attempt, count)
            await store.redis.flushall()
            await app.aclose()
