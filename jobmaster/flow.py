"""Calls not enqueued yet, and flows: a DAG of calls that ``registry.enqueue_flow`` writes all
or nothing (see :mod:`jobmaster.related_enqueue`)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobmaster.errors import InvalidArguments
from jobmaster.handle import JobHandle
from jobmaster.options import check_job_id
from jobmaster.registry_view import RegisteredJob


class FlowCycle(InvalidArguments):
    """The jobs of a flow depend on each other in a cycle; nothing was written.

    Attributes:
        cycle: the ids of the jobs on the cycle, each waiting on the next (the last on the
            first).
    """

    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = list(cycle)
        path = " -> ".join([*self.cycle, self.cycle[0]])
        super().__init__(f"the flow's dependencies form a cycle ({path}); nothing was written")


@dataclass(frozen=True)
class Call:
    """A call of a job, validated and packed but not enqueued (``handler.call(...)``, or
    ``handler.options(...).call(...)``): what flows and groups are made of."""

    handler: RegisteredJob
    arguments: bytes
    queue: str
    priority: int
    delay_ms: int = 0
    job_id: str | None = None
    tags: tuple[str, ...] = ()
    after: tuple[JobHandle[Any] | str, ...] = ()
    after_any: tuple[JobHandle[Any] | str, ...] = ()

    @property
    def name(self) -> str:
        return self.handler.definition.name


Dependency = JobHandle[Any] | str
"""What ``after=`` and ``after_any=`` take: a job's handle, or its id."""


def dependencies(value: Iterable[Dependency] | None, option: str) -> tuple[Dependency, ...]:
    """The checked value of ``after=`` or ``after_any=``."""
    if value is None:
        return ()
    if isinstance(value, str | JobHandle):
        value = [value]
    try:
        items = tuple(value)
    except TypeError:
        raise InvalidArguments(
            f"{option}= takes a list of job handles or ids, got {value!r}"
        ) from None
    for item in items:
        if isinstance(item, JobHandle):
            continue
        if not isinstance(item, str):
            raise InvalidArguments(f"{option}= takes job handles or ids, got {item!r}")
        check_job_id(item)
    return items


def new_id() -> str:
    """A job id of 128 random bits (as enqueue draws them)."""
    return os.urandom(16).hex()


@dataclass
class FlowJob:
    """One job of a flow: its call, id and dependencies."""

    call: Call
    id: str
    after: tuple[Dependency, ...] = ()
    after_any: tuple[Dependency, ...] = ()


@dataclass
class Flow:
    """A DAG of calls, enqueued all or nothing by ``registry.enqueue_flow(flow)``.

    ``add`` returns the job's handle at once (its id is chosen or drawn then), for other
    jobs of the flow to depend on. Dependencies may name jobs of the flow (handles or ids)
    or jobs that exist already; the jobs of a flow may be in several queues.
    """

    jobs: list[FlowJob] = field(default_factory=list)

    def add(
        self,
        call: Call,
        *,
        job_id: str | None = None,
        after: Iterable[Dependency] | None = None,
        after_any: Iterable[Dependency] | None = None,
    ) -> JobHandle[Any]:
        """Add a call: it runs once each job of ``after`` succeeded and each of
        ``after_any`` ended (in any final state). Returns its handle."""
        if not isinstance(call, Call):
            raise InvalidArguments(f"Flow.add takes a call made by handler.call(...), got {call!r}")
        chosen = job_id if job_id is not None else call.job_id
        job_id = new_id() if chosen is None else check_job_id(chosen)
        if any(job.id == job_id for job in self.jobs):
            raise InvalidArguments(f"the flow has a job with id {job_id!r} already")
        job = FlowJob(
            call,
            job_id,
            call.after + dependencies(after, "after"),
            call.after_any + dependencies(after_any, "after_any"),
        )
        self.jobs.append(job)
        return JobHandle(
            call.handler.registry, job_id, call.queue, signature=call.handler.signature
        )


def creation_order(jobs: Sequence[FlowJob]) -> list[FlowJob]:
    """The jobs of a flow with each after the flow's jobs it depends on.

    Raises:
        FlowCycle: some depend on each other in a cycle.
    """
    by_id = {job.id: job for job in jobs}
    inside = {
        job.id: [d for d in map(_dependency_id, (*job.after, *job.after_any)) if d in by_id]
        for job in jobs
    }
    order: list[FlowJob] = []
    state: dict[str, int] = {}  # 1: being visited, 2: done
    for root in jobs:
        if state.get(root.id) == 2:
            continue
        stack: list[tuple[str, int]] = [(root.id, 0)]
        path: list[str] = []
        while stack:
            job_id, next_dep = stack.pop()
            if next_dep == 0:
                if state.get(job_id) == 2:
                    continue
                state[job_id] = 1
                path.append(job_id)
            deps = inside[job_id]
            if next_dep < len(deps):
                stack.append((job_id, next_dep + 1))
                dep = deps[next_dep]
                if state.get(dep) == 1:  # a cycle: dep waits on ... job_id, which waits on dep
                    raise FlowCycle(path[path.index(dep) :])
                if state.get(dep) != 2:
                    stack.append((dep, 0))
                continue
            state[job_id] = 2
            path.pop()
            order.append(by_id[job_id])
    return order


def _dependency_id(dependency: Dependency) -> str:
    return dependency.id if isinstance(dependency, JobHandle) else dependency
