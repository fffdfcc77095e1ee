"""Groups (job arrays): members that run apart, a completion policy, and a callback enqueued
once when the group completes. See relations.lua for how they are kept and decided."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from jobmaster.codec import unpack
from jobmaster.errors import InvalidArguments, InvalidState, ResultTimeout, redis_errors
from jobmaster.handle import JobHandle
from jobmaster.models import JobState
from jobmaster.records import from_ms, status_state
from jobmaster.relay import Relay, pack_message
from jobmaster.store.replies import Outcome

if TYPE_CHECKING:
    from jobmaster.registry_view import RegistryView


@dataclass(frozen=True)
class Quorum:
    """``complete_when=Quorum(n)``: the group completes once ``n`` members succeeded."""

    n: int

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise InvalidArguments(f"Quorum(n) takes a whole number >= 1, got {self.n!r}")


class GroupState(StrEnum):
    """Where a group is: running until its completion policy decides."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    """It completed (its callback, if any, was enqueued)."""
    FAILED = "failed"
    """It can no longer complete as things stand; retrying its failed members may change
    that."""
    CANCELLED = "cancelled"


class GroupFailed(InvalidState):
    """A group's results were asked for, and it failed or was cancelled."""

    def __init__(self, info: GroupInfo) -> None:
        self.info = info
        super().__init__(f"group {info.id} {info.state.value}: {info.ended}", info.state.value)


@dataclass(frozen=True)
class GroupInfo:
    """A group as it is now."""

    id: str
    queue: str
    """The queue that keeps the group (its first member's)."""
    state: GroupState
    complete_when: str | int
    """``"all"``, ``"any"``, or the quorum."""
    on_failure: str
    members: list[JobHandle[Any]]
    counts: dict[JobState, int]
    """How many members are in each state now."""
    ended: dict[str, int]
    """Members that ended, as the group counted them: succeeded, failed, cancelled."""
    created_at: datetime
    finished_at: datetime | None = None
    then: JobHandle[Any] | None = None
    member_states: list[JobState | None] = field(default_factory=list)
    """Each member's state now, in member order (None: it was forgotten)."""


class GroupHandle:
    """A reference to one group, usable from any process that knows its id and queue."""

    def __init__(self, registry: RegistryView, group_id: str, queue: str) -> None:
        self.registry = registry
        self.id = group_id
        self.queue = queue

    def __repr__(self) -> str:
        return f"GroupHandle(id={self.id!r}, queue={self.queue!r})"

    async def info(self) -> GroupInfo:
        """The group's state, counts and members.

        Raises:
            InvalidArguments: no such group (it never existed, or it was forgotten after
                the retention).
        """
        with redis_errors("reading the group failed", self.registry.settings.redis_url):
            store = self.registry.connection().store
            found = await store.relations.group(self.queue, self.id)
            if found is None:
                raise InvalidArguments(f"no group {self.id!r} in queue {self.queue!r}")
            definition, members, tally = found
            states = await _member_states(self.registry, members)
        counts: dict[JobState, int] = {}
        for state in states:
            if state is not None:
                counts[state] = counts.get(state, 0) + 1
        then = definition.get("t")
        return GroupInfo(
            id=self.id,
            queue=self.queue,
            state=GroupState(tally["s"]),
            complete_when=definition["w"],
            on_failure=definition["f"],
            members=[JobHandle(self.registry, m[1], m[0]) for m in members],
            counts=counts,
            ended={
                "succeeded": tally["ok"],
                "failed": tally["failed"],
                "cancelled": tally["cancelled"],
            },
            created_at=from_ms(definition["c"]),
            finished_at=from_ms(tally["f"]) if tally.get("f") else None,
            then=JobHandle(self.registry, then[1], then[0]) if then else None,
            member_states=states,
        )

    async def results(self, timeout: float | None = None) -> list[Any]:
        """Wait until the group completed; then each member's result in member order (None
        for a member that did not succeed: with ``"any"`` or a quorum, the group completes
        before all its members ended).

        Raises:
            GroupFailed: the group failed or was cancelled.
            ResultTimeout: it did not complete within ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.01
        while True:
            info = await self.info()
            if info.state is GroupState.SUCCEEDED:
                return await member_results(self.registry, info.members)
            if info.state is not GroupState.RUNNING:
                raise GroupFailed(info)
            if deadline is not None and time.monotonic() >= deadline:
                raise ResultTimeout(f"group {self.id} did not complete within {timeout}s")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)

    async def cancel(self) -> None:
        """Cancel the group: its members that have not ended are cancelled (running ones
        are asked to stop), and its callback never runs.

        Raises:
            InvalidArguments: no such group.
            InvalidState: the group succeeded already (its callback was enqueued).
        """
        info = await self.info()
        if info.state is GroupState.SUCCEEDED:
            raise InvalidState(f"group {self.id} succeeded already", "succeeded")
        await self._relate({"k": "cancel_group"}, "cancelling the group failed")

    async def retry_failed(self) -> list[JobHandle[Any]]:
        """Run the failed and cancelled members again; the group counts them as running
        again (a failed group runs again, and completes if they succeed). Their handles.

        Raises:
            InvalidState: the group was cancelled.
        """
        info = await self.info()
        if info.state is GroupState.CANCELLED:
            raise InvalidState(
                f"group {self.id} was cancelled; its members are not retried", "cancelled"
            )
        retried: list[JobHandle[Any]] = []
        reopened: list[list[int]] = []
        failure = "retrying the group's members failed"
        with redis_errors(failure, self.registry.settings.redis_url):
            store = self.registry.connection().store
            ended = [
                i
                for i, state in enumerate(info.member_states)
                if state in (JobState.FAILED, JobState.CANCELLED)
            ]
            seqs = await store.relations.member_ends(self.queue, self.id, ended)
            for i, seq in zip(ended, seqs, strict=True):
                member = info.members[i]
                answer = await store.control.retry(member.queue, member.id)
                if answer.outcome is Outcome.DONE:
                    retried.append(member)
                    reopened.append([i, seq])
        if reopened:  # the group counts them as running again (see relations.lua)
            await self._relate({"k": "reopen", "i": reopened}, failure)
        return retried

    async def _relate(self, message: dict[str, Any], failure: str) -> None:
        """Apply a message about this group to its queue and deliver what it sends."""
        with redis_errors(failure, self.registry.settings.redis_url):
            store = self.registry.connection().store
            packed = pack_message({"t": self.queue, "g": self.id, **message})
            _, sent = await store.relations.relate(self.queue, packed)
            retention_ms = int(self.registry.settings.retention * 1000)
            await Relay(store, retention_ms).deliver(self.queue, sent)


class GroupContext:
    """``ctx.group`` in a member or the callback of a group.

    Attributes:
        id: the group's id.
        queue: the queue that keeps the group.
        index: the member's index in the group (0 for the first), None in the callback.
    """

    def __init__(self, registry: RegistryView, group_id: str, queue: str, index: int | None):
        self.id = group_id
        self.queue = queue
        self.index = index
        self.handle = GroupHandle(registry, group_id, queue)

    async def results(self) -> list[Any]:
        """The members' results in member order (None for a member that did not succeed)."""
        info = await self.handle.info()
        return await member_results(self.handle.registry, info.members)


async def member_results(registry: RegistryView, members: Sequence[JobHandle[Any]]) -> list[Any]:
    """The results of jobs in order, read by queue in one round trip each (None for a job
    without a result)."""
    store = registry.connection().store
    results: list[Any] = [None] * len(members)
    for queue, indexes in _by_queue([m.queue for m in members]).items():
        raws = await store.relations.results(queue, [members[i].id for i in indexes])
        for i, raw in zip(indexes, raws, strict=True):
            results[i] = unpack(raw) if raw is not None else None
    return results


async def _member_states(
    registry: RegistryView, members: Sequence[Sequence[str]]
) -> list[JobState | None]:
    store = registry.connection().store
    states: list[JobState | None] = [None] * len(members)
    for queue, indexes in _by_queue([m[0] for m in members]).items():
        raws = await store.relations.statuses(queue, [members[i][1] for i in indexes])
        for i, raw in zip(indexes, raws, strict=True):
            states[i] = status_state(raw) if raw is not None else None
    return states


def _by_queue(queues: Sequence[str]) -> dict[str, list[int]]:
    """The indexes of the items of each queue."""
    found: dict[str, list[int]] = {}
    for i, queue in enumerate(queues):
        found.setdefault(queue, []).append(i)
    return found


def group_context(registry: RegistryView, group: Sequence[Any]) -> GroupContext | None:
    """``ctx.group`` from the group field of a job's record ([id, queue, index])."""
    try:
        group_id, queue, index = group
        return GroupContext(registry, str(group_id), str(queue), None if index < 0 else int(index))
    except (TypeError, ValueError):
        return None
