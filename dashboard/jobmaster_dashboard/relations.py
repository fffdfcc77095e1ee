"""What the pages say of relations between jobs: a job's dependencies in both directions and
its group (``registry.dependencies``), and a group's completion policy in words."""

from __future__ import annotations

from dataclasses import dataclass, field

from jobmaster import InvalidArguments, Job, JobLink, JobNotFound, JobState, Registry

MAX_SHOWN = 500
"""Dependencies listed each way on a job's page (the rest are counted)."""

MODES = {"all": "after", "any": "after_any"}
"""How a dependency was declared, by its mode."""


@dataclass(frozen=True)
class Dependency:
    """One end of a dependency as a page shows it."""

    queue: str
    id: str
    mode: str
    """``after`` (it must succeed) or ``after_any`` (it must end, however)."""
    state: str | None
    """Its state now (a group's: running, succeeded, failed, cancelled); None: it is no
    longer kept."""
    met: bool | None
    """Upstream only: whether the job counts it as met."""
    group: bool
    """It is a group (the job is the group's callback)."""
    why: str = ""
    """Upstream, for a job blocked by it: why it still holds the job back."""


@dataclass(frozen=True)
class GroupRef:
    """The group a job belongs to."""

    id: str
    queue: str | None
    """Where the group is kept (None: not known; its page looks for it)."""
    callback: bool
    """The job is the group's callback, not one of its members."""


@dataclass(frozen=True)
class RelationsView:
    """What a job's page says of its relations."""

    upstream: list[Dependency]
    """What the job waits on (the first :data:`MAX_SHOWN`)."""
    downstream: list[Dependency]
    """What waits on it (the first :data:`MAX_SHOWN`)."""
    group: GroupRef | None
    upstream_total: int = 0
    downstream_total: int = 0
    blocking: list[Dependency] = field(default_factory=list)
    """The dependencies not met yet (the first :data:`MAX_SHOWN`)."""


NO_RELATIONS = RelationsView([], [], None)


def _why(link: JobLink, state: str | None) -> str:
    """Why an unmet dependency holds its dependent back."""
    what = "group" if link.group else "job"
    if state is None:
        return f"this {what} is no longer kept: cancel the waiting job"
    if link.group:
        if state in ("failed", "cancelled"):
            return (
                f"the group {state}: it waits until the group's failed members are retried "
                f"and the group completes"
            )
        return "waiting for the group to complete"
    if state in (JobState.FAILED, JobState.CANCELLED) and link.mode == "all":
        return f"it {state}: it waits until that job is retried and succeeds"
    if JobState(state).is_final:
        return "it ended: a worker of its queue is passing the news on"
    return "waiting for it to succeed" if link.mode == "all" else "waiting for it to end"


async def _group_state(registry: Registry, link: JobLink) -> str | None:
    """A group's state as a dependency: the link's (None while running, or when it is not
    kept), told apart by looking the group up."""
    if link.state is not None:
        return link.state.value
    try:
        await registry.group(link.id, link.queue)
    except InvalidArguments:
        return None
    return "running"


async def _dependency(registry: Registry, link: JobLink, upstream: bool) -> Dependency:
    state = await _group_state(registry, link) if link.group else _value(link.state)
    return Dependency(
        queue=link.queue,
        id=link.id,
        mode=MODES[link.mode],
        state=state,
        met=link.met,
        group=link.group,
        why=_why(link, state) if upstream and not link.met else "",
    )


def _value(state: JobState | None) -> str | None:
    return None if state is None else state.value


async def read_relations(registry: Registry, job: Job) -> RelationsView:
    """A job's dependencies both ways and its group (nothing for a job that was deleted
    meanwhile)."""
    try:
        found = await registry.dependencies(job.id, job.queue)
    except JobNotFound:
        return NO_RELATIONS
    upstream = [await _dependency(registry, link, True) for link in found.upstream[:MAX_SHOWN]]
    downstream = [await _dependency(registry, link, False) for link in found.downstream[:MAX_SHOWN]]
    unmet_beyond = [u for u in found.upstream[MAX_SHOWN:] if not u.met][:MAX_SHOWN]
    blocking = [d for d in upstream if not d.met]
    blocking += [await _dependency(registry, link, True) for link in unmet_beyond]
    group = None
    callback_of = next((d for d in upstream if d.group), None)
    if found.group_id is not None:
        group = GroupRef(found.group_id, found.group_queue, callback=False)
    elif callback_of is not None:
        group = GroupRef(callback_of.id, callback_of.queue, callback=True)
    elif job.group_id is not None:
        group = GroupRef(job.group_id, None, callback=True)
    return RelationsView(
        upstream,
        downstream,
        group,
        upstream_total=len(found.upstream),
        downstream_total=len(found.downstream),
        blocking=blocking[:MAX_SHOWN],
    )


def completes_when(complete_when: str | int, size: int) -> str:
    """A group's completion policy in words."""
    members = "member" if size == 1 else "members"
    if complete_when == "all":
        return f"all {size} {members} succeed" if size > 1 else "its member succeeds"
    if complete_when == "any":
        return "any member succeeds"
    return f"{complete_when} of {size} {members} succeed"


def on_failure_text(on_failure: str) -> str:
    """What a group does when a member fails, in words."""
    if on_failure == "cancel":
        return (
            "cancel: the first member that fails fails the group, and the members that have "
            "not ended are cancelled"
        )
    return "continue: the other members run on"
