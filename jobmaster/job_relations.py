"""Relations between jobs, as :class:`jobmaster.Registry` offers them: flows, groups, and the
dependencies of a job in both directions.

:class:`Relations` holds the public methods; the writing is in
:mod:`jobmaster.related_enqueue`, the data and its rules in ``relations.lua``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from jobmaster.errors import InvalidArguments, JobNotFound, redis_errors
from jobmaster.flow import Call, Flow, FlowJob, new_id
from jobmaster.groups import GroupHandle, Quorum
from jobmaster.handle import JobHandle
from jobmaster.models import JobState
from jobmaster.options import check_job_id, check_queue
from jobmaster.records import dependency_met, status_state
from jobmaster.registry_view import RegistryView
from jobmaster.related_enqueue import NewGroup, enqueue_related


@dataclass(frozen=True)
class JobLink:
    """A dependency between two jobs, seen from one of them."""

    queue: str
    id: str
    mode: Literal["all", "any"]
    """``"all"``: the dependent runs once this job succeeded (``after``); ``"any"``: once
    it ended in any final state (``after_any``)."""
    state: JobState | None
    """The other job's state now (None: it does not exist, or was forgotten)."""
    met: bool | None = None
    """Upstream only: whether the dependent counts this dependency as met."""
    group: bool = False
    """The other end is a group (the job is its callback)."""


@dataclass(frozen=True)
class JobRelations:
    """The jobs a job waits on (``upstream``) and those that wait on it (``downstream``),
    and its group."""

    upstream: list[JobLink]
    downstream: list[JobLink]
    group_id: str | None = None
    group_queue: str | None = None


class Relations:
    """Flows, groups and dependencies; a part of :class:`jobmaster.Registry`.

    Raises:
        InvalidArguments: bad input (nothing written).
        RedisUnavailable: Redis could not be reached.
    """

    async def enqueue_flow(self: RegistryView, flow: Flow) -> list[JobHandle[Any]]:
        """Enqueue the jobs of a flow all or nothing; their handles, in the order added.

        Raises:
            FlowCycle: the flow's dependencies form a cycle (named); nothing was written.
            InvalidArguments: a dependency outside the flow does not exist, or the flow is
                empty; nothing was written.
        """
        if not isinstance(flow, Flow):
            raise InvalidArguments(f"enqueue_flow takes a Flow, got {flow!r}")
        if not flow.jobs:
            raise InvalidArguments("the flow has no jobs")
        return await enqueue_related(self, flow.jobs)

    async def enqueue_group(
        self: RegistryView,
        calls: Iterable[Call],
        *,
        complete_when: Literal["all", "any"] | Quorum = "all",
        on_failure: Literal["continue", "cancel"] = "continue",
        then: Call | None = None,
        group_id: str | None = None,
    ) -> GroupHandle:
        """Enqueue calls as one group (a job array: each member knows its index through
        ``ctx.group.index``).

        Args:
            calls: the members, made by ``handler.call(...)``; they may go to several queues.
            complete_when: ``"all"`` (every member succeeded), ``"any"`` (one did) or
                ``Quorum(n)`` (n did).
            on_failure: ``"continue"`` lets the other members run when one fails;
                ``"cancel"`` fails the group at once and cancels the members that have not
                ended (running ones are asked to stop).
            then: a callback enqueued exactly once when the group completes; it reads the
                members' results through ``ctx.group.results()``.
            group_id: your own id for the group (default: drawn at random).
        """
        members = list(calls)
        if not members:
            raise InvalidArguments("a group needs at least one member")
        for call in [*members, *([then] if then is not None else [])]:
            if not isinstance(call, Call):
                raise InvalidArguments(
                    f"a group's members and callback are calls made by handler.call(...), "
                    f"got {call!r}"
                )
        when: str | int
        if isinstance(complete_when, Quorum):
            if complete_when.n > len(members):
                raise InvalidArguments(
                    f"Quorum({complete_when.n}) cannot be reached by {len(members)} members"
                )
            when = complete_when.n
        elif complete_when in ("all", "any"):
            when = complete_when
        else:
            raise InvalidArguments(
                f'complete_when= takes "all", "any" or Quorum(n), got {complete_when!r}'
            )
        if on_failure not in ("continue", "cancel"):
            raise InvalidArguments(f'on_failure= takes "continue" or "cancel", got {on_failure!r}')
        gid = os.urandom(16).hex() if group_id is None else check_job_id(group_id)
        jobs = [
            FlowJob(call, call.job_id or new_id(), call.after, call.after_any) for call in members
        ]
        callback = None
        if then is not None:
            callback = FlowJob(then, then.job_id or new_id(), then.after, then.after_any)
        home = members[0].queue
        group = NewGroup(gid, home, when, on_failure, jobs, callback)
        everything = [*jobs, *([callback] if callback is not None else [])]
        await enqueue_related(self, everything, group)
        return GroupHandle(self, gid, home)

    async def group(self: RegistryView, group_id: str, queue: str | None = None) -> GroupHandle:
        """The handle of an existing group (``queue``: where it is kept; looked for in every
        queue when not given).

        Raises:
            InvalidArguments: no such group.
        """
        with redis_errors("finding the group failed", self.settings.redis_url):
            store = self.connection().store
            if queue is None:
                queues = sorted(set(await store.inspection.queues()) | set(self.queues()))
                queue = await store.relations.find_group(queues, group_id)
            else:
                check_queue(queue)
                if await store.relations.group(queue, group_id) is None:
                    queue = None
        if queue is None:
            raise InvalidArguments(f"no group {group_id!r}")
        return GroupHandle(self, group_id, queue)

    async def groups(self: RegistryView, queue: str, limit: int = 100) -> list[GroupHandle]:
        """The newest groups kept in ``queue``."""
        check_queue(queue)
        with redis_errors("reading the groups failed", self.settings.redis_url):
            found = await self.connection().store.relations.group_ids(queue, limit)
        return [GroupHandle(self, gid, queue) for gid, _ in found]

    async def dependencies(self: RegistryView, job_id: str, queue: str) -> JobRelations:
        """What a job waits on and what waits on it, with their states now.

        Raises:
            JobNotFound: no such job.
        """
        check_queue(queue)
        with redis_errors("reading the dependencies failed", self.settings.redis_url):
            store = self.connection().store
            if not (await store.relations.existing(queue, [job_id]))[0]:
                raise JobNotFound(f"no job {job_id!r} in queue {queue!r}")
            (waits,) = await store.relations.waits(queue, [job_id])
            related = await store.relations.related(queue, job_id)
            ups = waits or []
            downs = related.get("d") or []
            states = await _states(self, [(e[0], e[1], e[5] == "g") for e in ups])
            down_states = await _states(self, [(d[0], d[1], False) for d in downs])
        upstream = [
            JobLink(e[0], e[1], e[2], s, dependency_met(e), e[5] == "g")
            for e, s in zip(ups, states, strict=True)
        ]
        downstream = [JobLink(d[0], d[1], d[2], s) for d, s in zip(downs, down_states, strict=True)]
        group = related.get("g")
        return JobRelations(
            upstream,
            downstream,
            group[0] if group else None,
            group[1] if group else None,
        )


async def _states(
    registry: RegistryView, jobs: Sequence[tuple[str, str, bool]]
) -> list[JobState | None]:
    """The state of each (queue, id, is a group), read by queue in one round trip each (a
    group's as its callback sees it: None while it runs)."""
    store = registry.connection().store
    states: list[JobState | None] = [None] * len(jobs)
    by_queue: dict[str, list[int]] = {}
    for i, (queue, job_id, is_group) in enumerate(jobs):
        if is_group:
            found = await store.relations.group(queue, job_id)
            value = found[2]["s"] if found else None
            states[i] = None if value in (None, "running") else JobState(value)
        else:
            by_queue.setdefault(queue, []).append(i)
    for queue, indexes in by_queue.items():
        raws = await store.relations.statuses(queue, [jobs[i][1] for i in indexes])
        for i, raw in zip(indexes, raws, strict=True):
            states[i] = status_state(raw) if raw is not None else None
    return states
