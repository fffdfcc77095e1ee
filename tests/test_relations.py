"""Relations between jobs with a worker in the test's process: dependencies (after,
after_any), flows, groups, and what a user reads of them. The tests with real worker
processes and faults are in test_relations_processes.py."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from jobmaster import (
    Context,
    Flow,
    FlowCycle,
    GroupFailed,
    GroupState,
    InvalidArguments,
    InvalidState,
    JobState,
    Quorum,
    Registry,
    Retry,
)
from jobmaster.scripts import source
from jobmaster.worker import Worker
from tests.conftest import live_worker, wait_until


@pytest.fixture
def jobs(registry: Registry) -> dict[str, Any]:
    """Jobs for the tests: `step` returns its argument, `flaky` fails while the Redis key
    `fail:<name>` exists, `member` returns its group index, `collect` the group's results."""
    store_key = "test:fail:"

    @registry.job(queue="flows")
    def step(n: int) -> int:
        return n

    @registry.job(queue="right")
    def elsewhere(n: int) -> int:
        return n * 10

    @registry.job(queue="flows", retry=Retry(max_attempts=1))
    async def flaky(name: str) -> str:
        store = registry.connection().store
        if await store.redis.exists(store_key + name):
            raise RuntimeError(f"{name} fails")
        return name

    @registry.job(queue="flows")
    async def member(ctx: Context, n: int) -> int:
        assert ctx.group is not None
        assert ctx.group.index is not None
        return ctx.group.index * 100 + n

    @registry.job(queue="flows")
    async def collect(ctx: Context) -> list[Any]:
        assert ctx.group is not None
        assert ctx.group.index is None
        return await ctx.group.results()

    return {"step": step, "elsewhere": elsewhere, "flaky": flaky, "member": member,
            "collect": collect, "fail_key": store_key}  # fmt: skip


async def test_a_dependent_is_blocked_until_its_dependency_succeeded(
    registry: Registry, jobs: dict[str, Any]
) -> None:
    step = jobs["step"]
    a = await step.options(delay=0.3).enqueue(1)
    b = await step.options(after=[a]).enqueue(2)
    info = await b.info()
    assert info.state is JobState.BLOCKED
    assert info.blocked_by == [a.id]
    async with live_worker(registry, queues=["flows"]):
        assert await b.result(timeout=10) == 2
    first = (await a.info()).attempts[0].finished_at
    second = (await b.info()).attempts[0].started_at
    assert first is not None
    assert second >= first


async def test_a_failed_dependency_keeps_its_dependents_blocked_until_retried(
    registry: Registry, jobs: dict[str, Any]
) -> None:
    flaky, step = jobs["flaky"], jobs["step"]
    store = registry.connection().store
    await store.redis.set(jobs["fail_key"] + "a", 1)
    a = await flaky.enqueue("a")
    b = await step.options(after=[a]).enqueue(2)
    c = await step.options(after_any=[a]).enqueue(3)
    async with live_worker(registry, queues=["flows"]):
        assert await c.result(timeout=10) == 3
        assert await a.state() is JobState.FAILED
        info = await b.info()
        assert info.state is JobState.BLOCKED
        assert info.blocked_by == [a.id]
        await store.redis.delete(jobs["fail_key"] + "a")
        await a.retry()
        assert await b.result(timeout=10) == 2


@pytest.mark.deployments
async def test_a_dependency_that_ended_already_counts_at_once(
    registry: Registry, jobs: dict[str, Any]
) -> None:
    step = jobs["step"]
    async with live_worker(registry, queues=["flows", "right"]):
        for _ in range(30):  # the dependency ends around the dependent's enqueue
            a = await step.enqueue(1)
            b = await jobs["elsewhere"].options(after=[a]).enqueue(2)
            c = await step.options(after=[a.id]).enqueue(3)
            assert await b.result(timeout=10) == 20
            assert await c.result(timeout=10) == 3


async def test_unknown_ids_and_cycles_write_nothing(
    registry: Registry, jobs: dict[str, Any]
) -> None:
    step = jobs["step"]
    with pytest.raises(InvalidArguments, match="does not exist"):
        await step.options(after=["no-such-job"]).enqueue(1)
    flow = Flow()
    x = flow.add(step.call(1), job_id="x")
    y = flow.add(step.call(2), job_id="y", after=[x])
    flow.add(step.call(3), job_id="z", after=[y, "w"])
    flow.add(step.call(4), job_id="w", after=["z"])
    with pytest.raises(FlowCycle) as cycle:
        await registry.enqueue_flow(flow)
    assert sorted(cycle.value.cycle) == ["w", "z"]
    assert (
        await registry.connection().store.redis.hlen(
            registry.connection().store.keys.queue("flows").jobs
        )
        == 0
    )


@pytest.mark.deployments
async def test_a_flow_across_queues_runs_in_order(registry: Registry, jobs: dict[str, Any]) -> None:
    step, elsewhere = jobs["step"], jobs["elsewhere"]
    flow = Flow()
    a = flow.add(step.call(1))
    b = flow.add(elsewhere.call(2), after=[a])
    c = flow.add(step.call(3), after=[b])
    d = flow.add(elsewhere.call(4), after_any=[a, c])
    handles = await registry.enqueue_flow(flow)
    assert [h.id for h in handles] == [a.id, b.id, c.id, d.id]
    assert await b.state() is JobState.BLOCKED
    async with live_worker(registry, queues=["flows", "right"]):
        assert await d.result(timeout=15) == 40
    ends = {h.id: (await h.info()).attempts[0] for h in (a, b, c, d)}
    assert ends[b.id].started_at >= ends[a.id].finished_at  # type: ignore[operator]
    assert ends[c.id].started_at >= ends[b.id].finished_at  # type: ignore[operator]
    assert ends[d.id].started_at >= ends[c.id].finished_at  # type: ignore[operator]
    relations = await registry.dependencies(b.id, "right")
    assert [(u.queue, u.id, u.state) for u in relations.upstream] == [
        ("flows", a.id, JobState.SUCCEEDED)
    ]
    assert [(d.queue, d.id) for d in relations.downstream] == [("flows", c.id)]


@pytest.mark.deployments
async def test_a_group_calls_back_once_with_results_in_order(
    registry: Registry, jobs: dict[str, Any]
) -> None:
    member, collect = jobs["member"], jobs["collect"]
    group = await registry.enqueue_group([member.call(n) for n in range(20)], then=collect.call())
    info = await group.info()
    assert info.state is GroupState.RUNNING
    assert len(info.members) == 20
    async with live_worker(registry, queues=["flows"], concurrency=4):
        results = await group.results(timeout=15)
        assert results == [i * 100 + i for i in range(20)]
        assert info.then is not None
        assert await info.then.result(timeout=10) == results
    info = await group.info()
    assert info.state is GroupState.SUCCEEDED
    assert info.counts == {JobState.SUCCEEDED: 20}


async def test_a_quorum_completes_early_and_cancel_stops_the_rest(
    registry: Registry, jobs: dict[str, Any]
) -> None:
    flaky, step = jobs["flaky"], jobs["step"]
    store = registry.connection().store
    await store.redis.set(jobs["fail_key"] + "bad", 1)
    later = step.options(delay=3600)  # members that do not run during the test
    quorum = await registry.enqueue_group(
        [*[step.call(n) for n in range(10)], *[later.call(n) for n in range(10, 20)]],
        complete_when=Quorum(10),
    )
    short = await registry.enqueue_group(
        [*[step.call(n) for n in range(9)], *[later.call(n) for n in range(9, 20)]],
        complete_when=Quorum(10),
    )
    failing = await registry.enqueue_group(
        [flaky.call("bad"), *[step.options(delay=30).call(n) for n in range(5)]],
        on_failure="cancel",
        then=step.call(99),
    )
    async with live_worker(registry, queues=["flows"]):
        results = await quorum.results(timeout=10)  # the tenth success completes it
        assert results == [*range(10), *[None] * 10]
        await wait_until(lambda: _count(short, JobState.SUCCEEDED, 9), timeout=10)
        assert (await short.info()).state is GroupState.RUNNING  # nine are not enough
        with pytest.raises(GroupFailed):
            await failing.results(timeout=10)
        await wait_until(lambda: _count(failing, JobState.CANCELLED, 5), timeout=10)
    info = await failing.info()
    assert info.state is GroupState.FAILED
    assert info.then is not None
    callback = await info.then.info()
    assert callback.state is JobState.BLOCKED
    assert callback.blocked_by == [failing.id]


async def _count(group: Any, state: JobState, n: int) -> bool:
    return bool((await group.info()).counts.get(state, 0) == n)


async def test_a_blocked_job_can_be_cancelled(registry: Registry, jobs: dict[str, Any]) -> None:
    step = jobs["step"]
    a = await step.options(delay=60).enqueue(1)
    b = await step.options(after=[a]).enqueue(2)
    c = await step.options(after_any=[b]).enqueue(3)
    await b.cancel()
    assert await b.state() is JobState.CANCELLED
    async with live_worker(registry, queues=["flows"]):
        assert await c.result(timeout=10) == 3


async def test_retention_keeps_blocked_jobs_and_forgets_a_group_with_its_members(
    redis_url: str, tmp_path: Any
) -> None:
    registry = Registry(redis_url, config_dir=tmp_path, environ={"JOBMASTER_RETENTION": "1"})
    try:

        @registry.job(queue="flows")
        def step(n: int) -> int:
            return n

        waiting = await step.options(delay=3600).enqueue(0)
        blocked = await step.options(after=[waiting]).enqueue(1)
        group = await registry.enqueue_group([step.call(n) for n in range(3)])
        async with live_worker(registry, queues=["flows"]):
            await group.results(timeout=10)
            members = (await group.info()).members
            await asyncio.sleep(1.1)  # past the retention of the group and its members
            await step.enqueue(2)  # an end prunes what is older than the retention
            await wait_until(lambda: _forgotten(registry, group.id), timeout=10)
        store = registry.connection().store
        for member in members:
            assert not (await store.relations.existing("flows", [member.id]))[0]
        assert await blocked.state() is JobState.BLOCKED
        assert (await blocked.info()).blocked_by == [waiting.id]
    finally:
        await registry.aclose()


async def _forgotten(registry: Registry, group_id: str) -> bool:
    return await registry.connection().store.relations.group("flows", group_id) is None


async def test_a_burst_worker_passes_on_its_last_news_before_it_exits(
    registry: Registry, jobs: dict[str, Any]
) -> None:
    a = await jobs["step"].enqueue(1)
    b = await jobs["elsewhere"].options(after=[a]).enqueue(2)
    worker = Worker(registry, queues=["flows"], burst=True, install_signal_handlers=False)
    await asyncio.wait_for(worker.run(), 20)
    assert await a.state() is JobState.SUCCEEDED
    assert await b.state() is JobState.QUEUED


async def test_retrying_a_failed_groups_members_lets_it_complete(
    registry: Registry, jobs: dict[str, Any]
) -> None:
    flaky, step = jobs["flaky"], jobs["step"]
    store = registry.connection().store
    await store.redis.set(jobs["fail_key"] + "m", 1)
    group = await registry.enqueue_group(
        [step.call(1), flaky.call("m"), flaky.call("m")], then=step.call(7)
    )
    async with live_worker(registry, queues=["flows"]):
        with pytest.raises(GroupFailed):
            await group.results(timeout=10)
    await store.redis.delete(jobs["fail_key"] + "m")
    retried = await group.retry_failed()
    assert len(retried) == 2
    assert (await group.info()).state is GroupState.RUNNING  # it waits on them again
    async with live_worker(registry, queues=["flows"]):
        assert await group.results(timeout=10) == [1, "m", "m"]
        info = await group.info()
        assert info.ended == {"succeeded": 3, "failed": 0, "cancelled": 0}
        assert info.then is not None
        assert await info.then.result(timeout=10) == 7
    with pytest.raises(InvalidState):
        await group.cancel()  # it completed: its callback ran
    assert (await group.info()).state is GroupState.SUCCEEDED


def test_the_scripts_that_end_jobs_make_what_relations_do_only_when_a_queue_has_some() -> None:
    # A script defines its local functions anew at each call, used or not: those of
    # relations.lua are made inside relations(), which runs only for a queue with relations.
    for script in ("finish", "cancel", "reclaim"):
        text = source(script)
        defined = set(re.findall(r"^local function (\w+)", text, re.MULTILINE))
        assert {"relations", "relations_ended"} <= defined, script
        for helper in ("jobs_ended", "apply_ended", "unblock", "apply_member", "create_related"):
            assert helper not in defined, (script, helper)
            assert f"  local function {helper}(" in text, (script, helper)  # in relations()
    # what only relations() uses of common.lua is made inside it too
    assert "add_entry" not in set(re.findall(r"^local function (\w+)", source("cancel"), re.M))
    assert "  local function add_entry(" in source("cancel")
