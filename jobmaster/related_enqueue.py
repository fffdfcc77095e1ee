"""Writing jobs with relations (dependencies, flows, groups) all or nothing.

Every job, dependency and group of one enqueue is sent in one call of ``relate.lua`` to one
queue (the home queue: the group's, or the first job's). What belongs to other queues rides
in that call as messages of the home queue's outbox, written in the same atomic call: so
either nothing is written, or everything will be, even if the producer dies right after. The
producer then delivers those messages itself (see :mod:`jobmaster.relay`); workers deliver
what it could not.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jobmaster.codec import pack
from jobmaster.errors import InvalidArguments, redis_errors
from jobmaster.flow import FlowJob, creation_order
from jobmaster.handle import JobHandle
from jobmaster.ops.middleware import EnqueueRequest
from jobmaster.records import job_record
from jobmaster.registry_view import RegistryView
from jobmaster.relay import Relay, pack_message

ENQUEUE_FAILED = "enqueue failed; none of the jobs was written, or all of them were"


@dataclass(frozen=True)
class NewGroup:
    """A group to create with its members: where it is kept, its completion policy and the
    callback (a job of the enqueue) that waits on it."""

    id: str
    queue: str
    complete_when: str | int
    on_failure: str
    members: Sequence[FlowJob]
    then: FlowJob | None = None


async def enqueue_related(
    registry: RegistryView, jobs: Sequence[FlowJob], group: NewGroup | None = None
) -> list[JobHandle[Any]]:
    """Write ``jobs`` (and ``group``, whose members and callback are among them) with their
    dependencies, all or nothing; their handles in the order given.

    Raises:
        FlowCycle: the jobs depend on each other in a cycle (nothing written).
        InvalidArguments: a dependency names a job that does not exist, or a job is unique.
    """
    order = creation_order(jobs)
    for job in jobs:
        controls = job.call.handler.controls
        if controls.unique or controls.unique_key:
            raise InvalidArguments(
                f"job {job.call.name!r} is unique: a unique job cannot have dependencies or "
                f"be part of a flow or group"
            )
    with redis_errors(ENQUEUE_FAILED, registry.settings.redis_url):
        store = registry.connection().store
        deps = await _resolve(registry, jobs)
        if group is not None and group.then is not None:  # the callback waits on the group
            deps[group.then.id].append([group.queue, group.id, "all", "g"])
        membership = _memberships(group)
        hooks = registry.hooks
        requests: list[tuple[EnqueueRequest, str]] = []
        by_queue: dict[str, list[dict[str, Any]]] = {}
        now_ms = int(time.time() * 1000)
        for job in order:
            headers = None
            if hooks is not None:
                request = EnqueueRequest(job.call.name, job.call.queue, 1)
                hooks.before_enqueue(request)
                headers = request.headers
                requests.append((request, job.id))
            by_queue.setdefault(job.call.queue, []).append(
                _new_job(job, deps[job.id], membership.get(job.id), group, headers, now_ms)
            )
        home = group.queue if group is not None else order[0].call.queue
        message: dict[str, Any] = {"k": "enqueue", "t": home, "jobs": by_queue.pop(home, [])}
        message["out"] = [{"t": q, "k": "enqueue", "jobs": js} for q, js in by_queue.items()]
        if group is not None:
            message["grp"] = _group_record(group, now_ms)
        for queue in {home, *by_queue}:
            await store.redis.sadd(store.keys.queues, queue)  # type: ignore[misc]
        created, sent = await store.relations.relate(home, pack_message(message))
        if sent:
            await Relay(store, int(registry.settings.retention * 1000)).deliver(home, sent)
    if hooks is not None:
        for request, job_id in requests:
            hooks.after_enqueue(request, [job_id])
    home_created = {j["id"]: c for j, c in zip(message["jobs"], created, strict=True)}
    return [
        JobHandle(
            job.call.handler.registry,
            job.id,
            job.call.queue,
            created=home_created.get(job.id, True),
            signature=job.call.handler.signature,
        )
        for job in jobs
    ]


def _new_job(
    job: FlowJob,
    deps: list[list[str]],
    member: list[Any] | None,
    group: NewGroup | None,
    headers: Any,
    now_ms: int,
) -> dict[str, Any]:
    """A job as relate.lua creates it."""
    call = job.call
    record = job_record(call.name, call.arguments, call.priority, now_ms, call.tags)
    if headers:
        record["h"] = dict(headers)
    if group is not None and (member is not None or job is group.then):
        record["g"] = [group.id, group.queue, -1 if member is None else member[2]]
    controls = call.handler.controls
    new: dict[str, Any] = {
        "id": job.id,
        "record": pack(record),
        "band": call.priority,
        "delay": call.delay_ms,
        "line": controls.line(call.arguments) if controls.active else "",
        "deps": deps,
    }
    if member is not None:
        new["g"] = member
    return new


def _memberships(group: NewGroup | None) -> dict[str, list[Any]]:
    """Each member's {group, group's queue, index}."""
    if group is None:
        return {}
    return {m.id: [group.id, group.queue, i] for i, m in enumerate(group.members)}


def _group_record(group: NewGroup, now_ms: int) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "w": group.complete_when,
        "f": group.on_failure,
        "z": len(group.members),
        "c": now_ms,
    }
    if group.then is not None:
        definition["t"] = [group.then.call.queue, group.then.id]
    members = [[m.call.queue, m.id] for m in group.members]
    return {"id": group.id, "def": pack(definition), "members": pack(members)}


async def _resolve(registry: RegistryView, jobs: Sequence[FlowJob]) -> dict[str, list[list[str]]]:
    """Each job's dependencies as [queue, id, mode, kind]: the jobs of the enqueue by their
    queue, the others found in Redis.

    Raises:
        InvalidArguments: a dependency outside the enqueue does not exist, or its id alone
            names jobs in several queues.
    """
    inside = {job.id: job.call.queue for job in jobs}
    store = registry.connection().store
    resolved: dict[str, list[list[str]]] = {}
    known: list[str] | None = None
    for job in jobs:
        found: list[list[str]] = []
        for mode, items in (("all", job.after), ("any", job.after_any)):
            for item in items:
                if isinstance(item, JobHandle):
                    queue, dep_id = item.queue, item.id
                    if (
                        inside.get(dep_id) != queue
                        and not (await store.relations.existing(queue, [dep_id]))[0]
                    ):
                        raise InvalidArguments(
                            f"job {job.id!r} depends on job {dep_id!r} of queue {queue!r}, "
                            f"which does not exist; nothing was written"
                        )
                elif item in inside:
                    queue, dep_id = inside[item], item
                else:
                    dep_id = item
                    if (await store.relations.existing(job.call.queue, [dep_id]))[0]:
                        queue = job.call.queue
                    else:
                        if known is None:
                            known = sorted(set(await store.inspection.queues()))
                        holders = [
                            q
                            for q, found_here in zip(
                                known, await _exists_in(registry, known, dep_id), strict=True
                            )
                            if found_here
                        ]
                        if not holders:
                            raise InvalidArguments(
                                f"job {job.id!r} depends on job {dep_id!r}, which does not "
                                f"exist in any queue; nothing was written"
                            )
                        if len(holders) > 1:
                            raise InvalidArguments(
                                f"job {job.id!r} depends on {dep_id!r}, an id of jobs in "
                                f"queues {', '.join(holders)}: pass its handle instead"
                            )
                        queue = holders[0]
                found.append([queue, dep_id, mode, "j"])
        resolved[job.id] = found
    return resolved


async def _exists_in(registry: RegistryView, queues: Sequence[str], job_id: str) -> list[bool]:
    store = registry.connection().store
    return [(await store.relations.existing(q, [job_id]))[0] for q in queues]
