"""The forms on a group's page (fields ``queue`` and ``id``): cancel the group, and retry its
failed (and cancelled) members.

Cancelling is offered while the group runs or after it failed: a group that succeeded had
its callback enqueued already, and keeps its state. A cancelled group's members are not
retried. Each refusal says why, and writes nothing.
"""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from jobmaster import GroupHandle, GroupState, InvalidArguments, InvalidState, JobmasterError
from jobmaster_dashboard import forms
from jobmaster_dashboard.actions import protected
from jobmaster_dashboard.group_pages import CANCELLABLE, bad_queue, no_group
from jobmaster_dashboard.notices import notice_params
from jobmaster_dashboard.pages import registry_of
from jobmaster_dashboard.rendering import redirect, render


def _refused(request: Request, status: int, message: str) -> Response:
    return render(request, "error.html", status_code=status, message=message)


async def _group(request: Request, form: FormData) -> GroupHandle | Response:
    """The group the form names, or the page that says why it names none."""
    queue, group_id = forms.text(form, "queue"), forms.text(form, "id")
    if not queue or not group_id:
        return _refused(request, 400, "Say which group: the form needs its queue and id.")
    if refused := bad_queue(queue):
        return _refused(request, 400, refused)
    try:
        return await registry_of(request).group(group_id, queue)
    except InvalidArguments:
        return _refused(request, 404, no_group(group_id, queue))


def _back(request: Request, group: GroupHandle, done: str, count: int = 1) -> Response:
    return redirect(request, "/group", queue=group.queue, id=group.id, **notice_params(done, count))


async def _cancel(request: Request, form: FormData) -> Response:
    group = await _group(request, form)
    if isinstance(group, Response):
        return group
    try:
        state = (await group.info()).state
        if state is GroupState.CANCELLED:
            return _back(request, group, "group-cancel-unchanged")
        if state not in CANCELLABLE:
            return _refused(
                request,
                409,
                f"The group {state.value} already: its callback was enqueued, so the group "
                f"is not cancelled. Cancel its members that still run one by one.",
            )
        await group.cancel()
    except InvalidArguments:  # forgotten meanwhile
        return _refused(request, 404, no_group(group.id, group.queue))
    return _back(request, group, "group-cancelled")


async def _retry(request: Request, form: FormData) -> Response:
    group = await _group(request, form)
    if isinstance(group, Response):
        return group
    try:
        retried = await group.retry_failed()
    except InvalidState as exc:  # the group was cancelled, or a member changed meanwhile
        return _refused(request, 409, str(exc))
    except InvalidArguments:
        return _refused(request, 404, no_group(group.id, group.queue))
    except JobmasterError as exc:
        return _refused(request, 409, str(exc))
    if not retried:
        return _back(request, group, "group-retry-none")
    return _back(request, group, "group-retried", len(retried))


cancel = protected(_cancel)
retry = protected(_retry)
