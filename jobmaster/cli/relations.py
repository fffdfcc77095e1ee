"""What ``jobmaster jobs show`` says of a job's relations: the jobs it waits on, the jobs
that wait on it, what it is blocked by, and its group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.table import Table

from jobmaster.cli.output import console
from jobmaster.errors import InvalidArguments
from jobmaster.job_relations import JobLink, JobRelations
from jobmaster.models import Job, JobState
from jobmaster.registry import Registry

MODES = {"all": "after", "any": "after_any"}
"""How a dependency's mode is written: as the option that made it."""

LISTED = 50
"""Rows of each table at most (``--json`` lists them all)."""


@dataclass(frozen=True)
class Link:
    """A dependency as the command shows it: the state of the other end is a job's, or,
    for a group's callback, the group's (running, succeeded, ...); None when it is gone."""

    link: JobLink
    state: str | None

    def document(self, upstream: bool) -> dict[str, Any]:
        found: dict[str, Any] = {
            "queue": self.link.queue,
            "id": self.link.id,
            "mode": self.link.mode,
            "state": self.state,
        }
        if upstream:
            found |= {"met": self.link.met, "group": self.link.group}
        return found


@dataclass(frozen=True)
class ShownRelations:
    upstream: list[Link]
    downstream: list[Link]
    group_id: str | None
    """The group the job is a member or the callback of."""
    group_queue: str | None
    """The queue that keeps that group."""
    callback: bool
    """The job is the group's callback (not a member)."""

    @property
    def role(self) -> str | None:
        """``"member"`` or ``"callback"`` of its group; None without one."""
        if self.group_id is None:
            return None
        return "callback" if self.callback else "member"

    def document(self) -> dict[str, Any]:
        """The fields ``jobs show --json`` adds to the job's."""
        return {
            "upstream": [link.document(upstream=True) for link in self.upstream],
            "downstream": [link.document(upstream=False) for link in self.downstream],
            "group_queue": self.group_queue,
            "group_role": self.role,
        }


async def read_relations(registry: Registry, job: Job) -> ShownRelations:
    """The job's relations, with the state of each job (or group) at the other end."""
    found: JobRelations = await registry.dependencies(job.id, job.queue)
    upstream = [Link(link, await _state(registry, link)) for link in found.upstream]
    downstream = [Link(link, await _state(registry, link)) for link in found.downstream]
    group_id, group_queue = found.group_id, found.group_queue
    # a callback is no member: its group is the group it waits on
    waited = next((u.link for u in upstream if u.link.group and u.link.id == job.group_id), None)
    if group_id is None and waited is not None:
        group_id, group_queue = waited.id, waited.queue
    return ShownRelations(upstream, downstream, group_id, group_queue, waited is not None)


async def _state(registry: Registry, link: JobLink) -> str | None:
    if not link.group:
        return link.state.value if link.state is not None else None
    try:  # the callback of a group: the group's own state (running included)
        return (await (await registry.group(link.id, link.queue)).info()).state.value
    except InvalidArguments:  # forgotten after the retention
        return None


def render_relations(job: Job, relations: ShownRelations) -> None:
    """Print what the job is blocked by, its group, and tables of the jobs it waits on and
    of those that wait on it (each only when there are some, of at most LISTED rows)."""
    if job.state is JobState.BLOCKED and job.blocked_by:
        ids = job.blocked_by
        more = f" ... ({len(ids)} in all)" if len(ids) > LISTED else ""
        console.print(f"blocked by: {' '.join(ids[:LISTED])}{more}", highlight=False, markup=False)
    if relations.group_id is not None:
        gid = relations.group_id
        console.print(
            f"group: {gid} ({relations.role}; jobmaster groups show {gid} "
            f"--queue {relations.group_queue})",
            highlight=False,
            markup=False,
        )
    if relations.upstream:
        table = Table(title="waits on")
        for column in ("queue", "id", "after", "state", "met"):
            table.add_column(column)
        for link in relations.upstream[:LISTED]:
            table.add_row(
                link.link.queue,
                f"group {link.link.id}" if link.link.group else link.link.id,
                MODES[link.link.mode],
                link.state or "gone",
                "yes" if link.link.met else "no",
            )
        _print(table, len(relations.upstream), "jobs it waits on")
    if relations.downstream:
        table = Table(title="waited on by")
        for column in ("queue", "id", "after", "state"):
            table.add_column(column)
        for link in relations.downstream[:LISTED]:
            table.add_row(
                link.link.queue, link.link.id, MODES[link.link.mode], link.state or "gone"
            )
        _print(table, len(relations.downstream), "jobs that wait on it")


def _print(table: Table, total: int, what: str) -> None:
    console.print(table)
    if total > LISTED:
        console.print(
            f"note: listed {LISTED} of the {total} {what}; --json lists them all",
            highlight=False,
            markup=False,
        )
