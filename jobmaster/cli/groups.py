"""``jobmaster groups``: show a group (its state, policy, progress and members) and list a
queue's groups; cancel a group, or retry its failed members."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from jobmaster.cli.application import registry_from, run
from jobmaster.cli.arguments import APP_HELP, Commands, positive_int
from jobmaster.cli.output import JSON_HELP, console, print_json
from jobmaster.errors import InvalidArguments, InvalidState, JobNotFound
from jobmaster.groups import GroupInfo, GroupState
from jobmaster.models import JobState

QUEUE_HELP = "the queue that keeps the group (default: looked for in every queue)"
WAITING = frozenset({JobState.BLOCKED, JobState.SCHEDULED, JobState.QUEUED})
ENDED = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


def add_parser(commands: Commands) -> None:
    groups = commands.add_parser("groups", help="show and list groups; cancel, retry failed")
    actions = groups.add_subparsers(dest="groups_command", required=True)
    show = actions.add_parser("show", help="a group: state, policy, progress, members")
    show.add_argument("group_id")
    show.add_argument("--queue", help=QUEUE_HELP)
    show.add_argument(
        "--limit", type=positive_int, default=50, help="members listed at most (default 50)"
    )
    show.add_argument("--app", help=APP_HELP)
    show.add_argument("--json", action="store_true", help=JSON_HELP)
    show.set_defaults(run=show_group)
    listing = actions.add_parser("list", help="the groups a queue keeps, newest first")
    listing.add_argument("queue")
    listing.add_argument("--limit", type=positive_int, default=20)
    listing.add_argument("--app", help=APP_HELP)
    listing.add_argument("--json", action="store_true", help=JSON_HELP)
    listing.set_defaults(run=list_groups)
    for name, text in (
        ("cancel", "cancel a group: its members that have not ended, and its callback"),
        ("retry", "run a group's failed and cancelled members again"),
    ):
        action = actions.add_parser(name, help=text, description=f"Groups: {text}.")
        action.add_argument("group_id")
        action.add_argument("--queue", help=QUEUE_HELP)
        action.add_argument("--app", help=APP_HELP)
        action.set_defaults(run=cancel_group if name == "cancel" else retry_group)


def show_group(args: argparse.Namespace) -> int:
    registry = registry_from(args)

    async def action() -> int:
        info = await (await registry.group(args.group_id, args.queue)).info()
        then = await _callback_state(info)
        if args.json:
            print_json(_document(info, then, members=args.limit))
        else:
            _render(info, then, args.limit)
        return 0

    return run(registry, action)


def list_groups(args: argparse.Namespace) -> int:
    registry = registry_from(args)

    async def action() -> int:
        listed = []
        for handle in await registry.groups(args.queue, limit=args.limit):
            try:
                info = await handle.info()
            except InvalidArguments:  # forgotten since it was listed
                continue
            listed.append((info, await _callback_state(info)))
        if args.json:
            print_json([_document(info, then) for info, then in listed])
            return 0
        if not listed:
            console.print(f"no groups in queue {args.queue}", highlight=False, markup=False)
            return 0
        table = Table(title=f"{args.queue}: groups, newest first")
        columns = ("id", "state", "complete when", "on failure", "members", "succeeded",
                   "failed", "cancelled", "created", "finished", "then")  # fmt: skip
        for column in columns:
            table.add_column(column)
        for info, then in listed:
            table.add_row(
                info.id,
                info.state.value,
                _policy(info),
                info.on_failure,
                str(len(info.members)),
                *(
                    str(info.counts.get(s, 0))
                    for s in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)
                ),
                info.created_at.isoformat(timespec="seconds"),
                info.finished_at.isoformat(timespec="seconds") if info.finished_at else "",
                _then_text(info, then),
            )
        console.print(table)
        return 0

    return run(registry, action)


def cancel_group(args: argparse.Namespace) -> int:
    registry = registry_from(args)

    async def action() -> int:
        group = await registry.group(args.group_id, args.queue)
        info = await group.info()
        if info.state is GroupState.CANCELLED:
            raise InvalidState(f"group {group.id} was cancelled already", "cancelled")
        then = await _callback_state(info)
        await group.cancel()
        left = sum(1 for s in info.member_states if s is not None and s not in ENDED)
        text = f"group {group.id} cancelled"
        if info.state is not GroupState.RUNNING:
            text += f" (it had {info.state.value})"
        text += f": {left} member{'s' if left != 1 else ''} had not ended, now cancelled"
        if left:
            text += " (running ones are asked to stop)"
        if info.then is not None and then in {s.value for s in WAITING}:
            text += f"; its callback {info.then.id} will not run"
        console.print(text, highlight=False, markup=False)
        return 0

    return run(registry, action)


def retry_group(args: argparse.Namespace) -> int:
    registry = registry_from(args)

    async def action() -> int:
        group = await registry.group(args.group_id, args.queue)
        retried = await group.retry_failed()
        if not retried:
            state = (await group.info()).state.value
            console.print(
                f"group {group.id} ({state}) has no failed or cancelled member to retry",
                highlight=False,
                markup=False,
            )
            return 0
        ids = " ".join(m.id for m in retried[:10]) + (" ..." if len(retried) > 10 else "")
        console.print(
            f"group {group.id}: {len(retried)} member{'s' if len(retried) != 1 else ''} "
            f"queued again: {ids}",
            highlight=False,
            markup=False,
        )
        return 0

    return run(registry, action)


async def _callback_state(info: GroupInfo) -> str | None:
    """The state of the group's callback; None without one, or when it is gone."""
    if info.then is None:
        return None
    try:
        return (await info.then.state()).value
    except JobNotFound:
        return None


def _needed(info: GroupInfo) -> int:
    """How many members must succeed for the group to complete."""
    if info.complete_when == "all":
        return len(info.members)
    if info.complete_when == "any":
        return 1
    return int(info.complete_when)


def _policy(info: GroupInfo) -> str:
    if info.complete_when == "all":
        return "all succeed"
    if info.complete_when == "any":
        return "any succeeds"
    return f"quorum {info.complete_when} of {len(info.members)}"


def _then_text(info: GroupInfo, state: str | None) -> str:
    if info.then is None:
        return ""
    return f"{info.then.queue}/{info.then.id} ({state or 'gone'})"


def _document(info: GroupInfo, then: str | None, members: int | None = None) -> dict[str, Any]:
    """A group as one JSON object: the fields of GroupInfo, plus its size, the successes it
    needs, and (when ``members`` is given) its first ``members`` members with their states."""
    found: dict[str, Any] = {
        "id": info.id,
        "queue": info.queue,
        "state": info.state.value,
        "complete_when": info.complete_when,
        "on_failure": info.on_failure,
        "size": len(info.members),
        "needed": _needed(info),
        "counts": {s.value: info.counts.get(s, 0) for s in JobState},
        "ended": info.ended,
        "created_at": info.created_at.isoformat(),
        "finished_at": info.finished_at.isoformat() if info.finished_at else None,
        "then": None
        if info.then is None
        else {"queue": info.then.queue, "id": info.then.id, "state": then},
    }
    if members is not None:
        found["members"] = [
            {"index": i, "queue": m.queue, "id": m.id, "state": s.value if s else None}
            for i, (m, s) in enumerate(zip(info.members, info.member_states, strict=True))
            if i < members
        ]
    return found


def _render(info: GroupInfo, then: str | None, limit: int) -> None:
    size = len(info.members)
    console.print(
        f"[bold]group {info.id}[/bold] on {info.queue}: [bold]{info.state.value}[/bold]",
        highlight=False,
    )
    console.print(f"complete when: {_policy(info)}; on failure: {info.on_failure}", highlight=False)
    times = f"created: {info.created_at.isoformat(timespec='seconds')}"
    if info.finished_at is not None:
        times += f"; ended: {info.finished_at.isoformat(timespec='seconds')}"
    console.print(times, highlight=False)
    counts = info.counts  # the members' states now (a retried member is waiting again)
    waiting = sum(1 for s in info.member_states if s is not None and s not in ENDED)
    console.print(
        f"progress: {counts.get(JobState.SUCCEEDED, 0)} of {size} members succeeded "
        f"({_needed(info)} needed), {counts.get(JobState.FAILED, 0)} failed, "
        f"{counts.get(JobState.CANCELLED, 0)} cancelled, {waiting} not ended",
        highlight=False,
    )
    if info.then is not None:
        console.print(f"then: {_then_text(info, then)}", highlight=False, markup=False)
    per_state = [f"{info.counts[s]} {s.value}" for s in JobState if info.counts.get(s)]
    gone = sum(1 for s in info.member_states if s is None)
    if gone:  # forgotten after the retention, or deleted
        per_state.append(f"{gone} gone")
    console.print(f"members per state: {', '.join(per_state)}", highlight=False)
    table = Table(title="members")
    for column in ("#", "queue", "id", "state"):
        table.add_column(column)
    for i, (member, member_state) in enumerate(zip(info.members, info.member_states, strict=True)):
        if i == limit:
            break
        shown = member_state.value if member_state else "gone"
        table.add_row(str(i), member.queue, member.id, shown)
    console.print(table)
    if size > limit:
        console.print(
            f"note: listed the first {limit} of {size} members; --limit {size} lists them all",
            highlight=False,
            markup=False,
        )
