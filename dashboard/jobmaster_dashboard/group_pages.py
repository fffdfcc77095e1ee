"""The groups of a queue, newest first, and one group's page: its state, completion policy,
progress, members in order and callback. The forms that act on a group are in
group_actions.py."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from jobmaster import (
    GroupHandle,
    GroupInfo,
    GroupState,
    InvalidArguments,
    JobHandle,
    JobNotFound,
    JobState,
    Registry,
)
from jobmaster.definition import QUEUE_PATTERN
from jobmaster_dashboard.pages import number, queue_names, registry_of
from jobmaster_dashboard.relations import completes_when, on_failure_text
from jobmaster_dashboard.rendering import redirect, render

GROUPS_SHOWN = 50
"""Groups listed per queue at first; ``limit`` asks for more."""
MAX_GROUPS_SHOWN = 500
MEMBERS_PER_PAGE = 500
"""Members listed on one page of a group (``offset`` pages through the rest)."""

CANCELLABLE = (GroupState.RUNNING, GroupState.FAILED)
"""A group that succeeded keeps its state: its callback was enqueued already."""
RETRIED = (JobState.FAILED, JobState.CANCELLED)
"""The states of the members that "retry failed members" runs again."""

_QUEUE = re.compile(QUEUE_PATTERN)


def bad_queue(queue: str) -> str | None:
    """Why ``queue`` is not a queue's name, or None when it may be one."""
    if _QUEUE.fullmatch(queue):
        return None
    return (
        f"{queue!r} is not a queue name: queue names are 1 to 64 letters, digits, dots, "
        f"dashes and underscores."
    )


def no_group(group_id: str, queue: str | None) -> str:
    where = f" in queue {queue!r}" if queue else ""
    return (
        f"There is no group {group_id!r}{where}: it never existed, or it ended and was "
        f"forgotten after the retention."
    )


@dataclass(frozen=True)
class Progress:
    """How far a group is, as the group counted its members' ends."""

    size: int
    ended: int
    succeeded: int
    failed: int
    cancelled: int

    @property
    def percent(self) -> int:
        return round(100 * self.ended / self.size) if self.size else 0


def progress(info: GroupInfo) -> Progress:
    ended = info.ended
    done = ended.get("succeeded", 0), ended.get("failed", 0), ended.get("cancelled", 0)
    return Progress(len(info.members), sum(done), *done)


@dataclass(frozen=True)
class GroupRow:
    """A group in a queue's list (``info`` None: it was forgotten while the page was read)."""

    id: str
    info: GroupInfo | None
    progress: Progress | None
    policy: str


@dataclass(frozen=True)
class Member:
    index: int
    handle: JobHandle[Any]
    state: JobState | None


async def _row(handle: GroupHandle) -> GroupRow:
    try:
        info = await handle.info()
    except InvalidArguments:
        return GroupRow(handle.id, None, None, "")
    return GroupRow(
        handle.id, info, progress(info), completes_when(info.complete_when, len(info.members))
    )


async def _queue_with_groups(registry: Registry, queues: Sequence[str]) -> str | None:
    """The first of ``queues`` that keeps a group (else the first one)."""
    found = await asyncio.gather(*(registry.groups(q, limit=1) for q in queues))
    for queue, kept in zip(queues, found, strict=True):
        if kept:
            return queue
    return queues[0] if queues else None


async def groups(request: Request) -> Response:
    """``GET /groups?queue=...``: the newest groups kept in a queue."""
    registry = registry_of(request)
    params = request.query_params
    queues = await queue_names(registry)
    queue = params.get("queue") or await _queue_with_groups(registry, queues)
    if queue is not None and (refused := bad_queue(queue)):
        return render(request, "error.html", status_code=400, message=refused)
    limit = number(params.get("limit"), GROUPS_SHOWN, 1, MAX_GROUPS_SHOWN)
    handles = await registry.groups(queue, limit=limit + 1) if queue else []
    rows = await asyncio.gather(*(_row(h) for h in handles[:limit]))
    return render(
        request,
        "groups.html",
        queues=queues,
        queue=queue,
        groups=rows,
        more=min(limit + GROUPS_SHOWN, MAX_GROUPS_SHOWN) if len(handles) > limit else None,
    )


async def _callback_state(info: GroupInfo) -> JobState | None:
    if info.then is None:
        return None
    try:
        return await info.then.state()
    except JobNotFound:
        return None


async def group(request: Request) -> Response:
    """``GET /group?queue=...&id=...``: one group (without ``queue``, it is looked for in
    every queue and the page redirected to its own address)."""
    registry = registry_of(request)
    params = request.query_params
    group_id = (params.get("id") or "").strip()
    queue = (params.get("queue") or "").strip() or None
    if not group_id:
        message = "Say which group: the address needs its id (/group?queue=...&id=...)."
        return render(request, "error.html", status_code=400, message=message)
    if queue is not None and (refused := bad_queue(queue)):
        return render(request, "error.html", status_code=400, message=refused)
    try:
        state = JobState(params["state"]) if params.get("state") else None
    except ValueError:
        return render(request, "error.html", status_code=400, message="unknown job state")
    try:
        handle = await registry.group(group_id, queue)
        info = await handle.info()
    except InvalidArguments:
        return render(request, "error.html", status_code=404, message=no_group(group_id, queue))
    if queue is None:
        return redirect(request, "/group", queue=handle.queue, id=group_id)
    return await render_group(request, info, state, number(params.get("offset"), 0, 0, 10**9))


async def render_group(
    request: Request, info: GroupInfo, state: JobState | None = None, offset: int = 0
) -> Response:
    """A group's page, its members filtered by ``state`` and paged from ``offset``."""
    members = [
        Member(i, handle, member_state)
        for i, (handle, member_state) in enumerate(
            zip(info.members, info.member_states, strict=True)
        )
        if state is None or member_state is state
    ]
    shown = members[offset : offset + MEMBERS_PER_PAGE]
    retryable = sum(1 for s in info.member_states if s in RETRIED)
    return render(
        request,
        "group.html",
        group=info,
        progress=progress(info),
        policy=completes_when(info.complete_when, len(info.members)),
        on_failure=on_failure_text(info.on_failure),
        callback_state=await _callback_state(info),
        members=shown,
        matching=len(members),
        offset=offset,
        per_page=MEMBERS_PER_PAGE,
        member_state=state,
        can_cancel=info.state in CANCELLABLE,
        retryable=retryable if info.state is not GroupState.CANCELLED else 0,
    )
