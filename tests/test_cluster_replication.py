"""min_replicas_acked on Redis Cluster: the WAIT goes to the master that took the writes.

A cluster of three masters with one replica each; the replica of one queue's master is
frozen (SIGSTOP), so that master cannot have its writes acknowledged while the other
masters can. Enqueues (async, many, sync) and attempt ends of that queue raise or retry
NotReplicated, over the multiplexed connections and over redis-py's cluster client alike;
those of a queue on another master go through.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from jobmaster import JobState, NotReplicated, Registry
from jobmaster.embedded_cluster import ClusterNode, EmbeddedCluster
from jobmaster.transport import clients
from jobmaster.transport.cluster import slot_of
from tests.conftest import live_worker
from tests.test_cluster_faults import collect_dropped_nodes

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(scope="module")
def replicated_cluster() -> Iterator[EmbeddedCluster]:
    with EmbeddedCluster(replicas=1) as cluster:
        deadline = time.monotonic() + 30
        while not all(
            b"state=online" in master.command("INFO", "replication")
            for master in cluster.masters_now()
        ):  # each replica has had its first full copy
            assert time.monotonic() < deadline, "the replicas did not catch up"
            time.sleep(0.05)
        yield cluster
    collect_dropped_nodes()


def replica_of(cluster: EmbeddedCluster, queue: str) -> ClusterNode:
    """The replica of the master that serves ``queue``."""
    master = cluster.master_of(slot_of(f"{{{queue}}}"))
    for node in cluster.nodes:
        if node is not master and node.process is not None:
            role = node.command("ROLE")
            if role[0] == b"slave" and int(role[2]) == master.port:
                return node
    raise AssertionError(f"no replica of {master.address}")


def two_queues_on_two_masters(cluster: EmbeddedCluster) -> tuple[str, str]:
    """A queue, and another one served by a different master."""
    first = "orders"
    first_master = cluster.master_of(slot_of(f"{{{first}}}"))
    for other in ("alpha", "beta", "gamma", "delta", "epsilon"):
        if cluster.master_of(slot_of(f"{{{other}}}")) is not first_master:
            return first, other
    raise AssertionError("every queue on one master")


@pytest.fixture(params=["own connections", "redis-py"])
async def acked_registry(
    request: pytest.FixtureRequest, replicated_cluster: EmbeddedCluster, tmp_path: Path
) -> AsyncIterator[Registry]:
    replicated_cluster.flushall()
    # long enough for a live replica on a loaded machine; the frozen one never answers
    url = f"{replicated_cluster.url}?min_replicas_acked=1&replicas_ack_timeout=2"
    registry = Registry(url, config_dir=tmp_path, environ={})
    if request.param == "redis-py":  # no fast path: redis-py's cluster client for all
        registry.redis_factory = lambda: clients.async_client(replicated_cluster.url)

    @registry.job()
    async def add(a: int, b: int) -> int:
        return a + b

    yield registry
    await registry.aclose()
    registry.close()
    collect_dropped_nodes()


async def test_enqueues_wait_for_the_replica_of_their_own_master(
    acked_registry: Registry, replicated_cluster: EmbeddedCluster
) -> None:
    frozen_queue, live_queue = two_queues_on_two_masters(replicated_cluster)
    add = acked_registry.jobs["add"]
    # with every replica up, all enqueues are acknowledged
    for queue in (frozen_queue, live_queue):
        assert (await add.options(queue=queue).enqueue(1, 1)).created
    replica = replica_of(replicated_cluster, frozen_queue)
    assert replica.process is not None
    os.kill(replica.process.pid, signal.SIGSTOP)
    try:
        to_frozen = add.options(queue=frozen_queue)
        with pytest.raises(NotReplicated) as one:
            await to_frozen.enqueue(1, 2)
        with pytest.raises(NotReplicated) as many:
            await to_frozen.enqueue_many([(1, 1), (2, 2)])
        with pytest.raises(NotReplicated) as sync:
            await asyncio.to_thread(to_frozen.enqueue_sync, 3, 3)
        # the other master's replica acknowledges its queue's jobs all the while
        to_live = add.options(queue=live_queue)
        assert (await to_live.enqueue(4, 4)).created
        assert all(h.created for h in await to_live.enqueue_many([(5, 5), (6, 6)]))
        assert (await asyncio.to_thread(to_live.enqueue_sync, 7, 7)).created
    finally:
        os.kill(replica.process.pid, signal.SIGCONT)
    written = [*one.value.handles, *many.value.handles, *sync.value.handles]
    assert len(written) == 4
    for handle in written:  # written on the master all the same
        job = await acked_registry.get_job(handle.id, queue=frozen_queue)
        assert job is not None
        assert job.state is JobState.QUEUED


async def test_attempt_ends_are_acknowledged_on_each_queues_master(
    acked_registry: Registry, replicated_cluster: EmbeddedCluster
) -> None:
    queues = list(two_queues_on_two_masters(replicated_cluster))
    add = acked_registry.jobs["add"]
    handles = [await add.options(queue=q).enqueue(n, n) for n in range(3) for q in queues]
    async with live_worker(acked_registry, queues=queues, concurrency=4):
        results = [await h.result(timeout=20) for h in handles]
    assert results == [2 * n for n in range(3) for _ in queues]
