"""What an action did, carried to the next page in its query string.

Only a fixed set of messages can be shown (``done`` names one of them), with a count and
the ids of the jobs that could not be handled: a link cannot make the dashboard display
text of its own choosing.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

MAX_LISTED = 20
"""Ids of jobs that could not be handled named in a notice (the rest are counted)."""

MESSAGES = {
    "retried": ("Retried {n} {jobs}.", "could not be retried"),
    "deleted": ("Deleted {n} {jobs}.", "could not be deleted"),
    "cancelled": ("Cancelled the job: it will not run.", ""),
    "cancel-requested": ("The job is running: its worker was told to stop it.", ""),
    "changed": ("Saved the job's changes.", ""),
    "schedule-added": ("Added the schedule.", ""),
    "schedule-deleted": ("Deleted the schedule.", ""),
    "worker-pause": ("Paused {n} {workers}.", "did not answer"),
    "worker-resume": ("Resumed {n} {workers}.", "did not answer"),
    "worker-drain": ("Draining {n} {workers}: they exit once their jobs end.", "did not answer"),
    "worker-stop": ("Stopping {n} {workers}.", "did not answer"),
    "queue-paused": (
        "Paused the queue: workers claim nothing from it until it is resumed; running jobs go on.",
        "",
    ),
    "queue-pause-unchanged": ("The queue was paused already.", ""),
    "queue-resumed": ("Resumed the queue: workers claim from it again.", ""),
    "queue-resume-unchanged": ("The queue was not paused.", ""),
    "group-cancelled": (
        "Cancelled the group: its members that had not ended are cancelled (running ones are "
        "told to stop), and its callback will not run.",
        "",
    ),
    "group-cancel-unchanged": ("The group was cancelled already.", ""),
    "group-retried": ("Retried {n} {members}: the group waits on them again.", ""),
    "group-retry-none": ("No member of the group failed or was cancelled: nothing to retry.", ""),
}


@dataclass(frozen=True)
class Notice:
    text: str
    problems: str
    """Which jobs could not be handled (empty when all were)."""


def notice_params(done: str, count: int = 1, failed: list[str] | None = None) -> dict[str, str]:
    """Query parameters for a redirect that reports an action."""
    params = {"done": done, "n": str(count)}
    if failed:
        params["failed"] = ",".join(failed[:MAX_LISTED])
        params["failed_n"] = str(len(failed))
    return params


def _number(raw: str | None) -> int:
    try:
        return max(0, int(raw or "0"))
    except ValueError:
        return 0


def read_notice(request: Request) -> Notice | None:
    """The notice a redirect asked this page to show, if any."""
    params = request.query_params
    known = MESSAGES.get(params.get("done", ""))
    if known is None:
        return None
    text, problem = known
    failed = [i for i in params.get("failed", "").split(",") if i][:MAX_LISTED]
    total = max(_number(params.get("failed_n")), len(failed))
    problems = ""
    if total:
        more = f" and {total - len(failed)} more" if total > len(failed) else ""
        problems = f"{total} {problem}: {', '.join(failed)}{more}."
    count = _number(params.get("n"))
    jobs, workers, members = (
        ("job", "worker", "member") if count == 1 else ("jobs", "workers", "members")
    )
    return Notice(text.format(n=count, jobs=jobs, workers=workers, members=members), problems)
