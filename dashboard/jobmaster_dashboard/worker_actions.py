"""The workers page's forms: pause, resume, drain and stop one worker (field ``id``), the
workers of a host (field ``host``) or all of them (field ``all``), through the registry's
remote control; the page then says how many acknowledged and which did not answer."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from jobmaster_dashboard import forms
from jobmaster_dashboard.actions import Action, protected
from jobmaster_dashboard.notices import notice_params
from jobmaster_dashboard.pages import registry_of
from jobmaster_dashboard.rendering import redirect

ACK_TIMEOUT = 2.0
"""Seconds the page waits for each worker's acknowledgement."""


def _worker_action(command: str) -> Action:
    async def act(request: Request, form: FormData) -> Response:
        worker_id = forms.text(form, "id") or None
        host = forms.text(form, "host") or None
        every = forms.text(form, "all") == "1"
        if (worker_id is not None) + (host is not None) + every != 1:
            return PlainTextResponse(
                "choose the workers with one of the fields id, host or all", status_code=400
            )
        send = getattr(registry_of(request), f"{command}_worker")
        results = await send(worker_id, host=host, all=every, timeout=ACK_TIMEOUT)
        failed = [r.worker_id for r in results if not r.delivered]
        done = len(results) - len(failed)
        return redirect(request, "/workers", **notice_params(f"worker-{command}", done, failed))

    return act


pause = protected(_worker_action("pause"))
resume = protected(_worker_action("resume"))
drain = protected(_worker_action("drain"))
stop = protected(_worker_action("stop"))
