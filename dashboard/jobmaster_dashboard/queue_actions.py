"""The overview's queue forms: pause and resume a queue (field ``queue``).

A paused queue still takes enqueues, but no worker claims from it until it is resumed;
attempts running when it was paused go on. The state is in Redis, so it outlives worker
restarts. A name that is not a queue's is refused with 400 and nothing is written.
"""

from __future__ import annotations

import re

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from jobmaster import InvalidArguments
from jobmaster.definition import QUEUE_PATTERN
from jobmaster_dashboard import forms
from jobmaster_dashboard.actions import Action, protected
from jobmaster_dashboard.notices import notice_params
from jobmaster_dashboard.pages import queue_names, registry_of
from jobmaster_dashboard.rendering import redirect, render

_QUEUE = re.compile(QUEUE_PATTERN)


def _refusal(queue: str, known: list[str]) -> str | None:
    """Why ``queue`` cannot be paused or resumed, or None when it can."""
    if not queue:
        return "Say which queue: the form's field queue is empty."
    if not _QUEUE.fullmatch(queue):
        return (
            f"{queue!r} is not a queue name: queue names are 1 to 64 letters, digits, "
            f"dots, dashes and underscores."
        )
    if queue not in known:
        listed = ", ".join(known) if known else "none yet"
        return f"There is no queue named {queue!r}. The queues: {listed}."
    return None


def _queue_action(pause: bool) -> Action:
    async def act(request: Request, form: FormData) -> Response:
        registry = registry_of(request)
        queue = forms.text(form, "queue")
        refused = _refusal(queue, await queue_names(registry))
        if refused is not None:
            return render(request, "error.html", status_code=400, message=refused)
        try:
            changed = await (registry.pause_queue if pause else registry.resume_queue)(queue)
        except InvalidArguments as exc:  # the library's own check of the name
            return render(request, "error.html", status_code=400, message=str(exc))
        verb = "pause" if pause else "resume"
        done = f"queue-{verb}d" if changed else f"queue-{verb}-unchanged"
        return redirect(request, "/", **notice_params(done))

    return act


pause = protected(_queue_action(pause=True))
resume = protected(_queue_action(pause=False))
