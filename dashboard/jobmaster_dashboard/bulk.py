"""Bulk actions on failed jobs: retry or delete the selected ones, or all of a queue's.

Each job is handled on its own (one script call each, a few at a time); the page that
follows says how many were done and which could not be (they were no longer failed, or
were gone). "All" means the jobs that were failed when the button was pressed: their ids
are read at once, and each is handled once, even if a retried job fails again meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from jobmaster import JobHandle, JobmasterError, JobState, Registry
from jobmaster_dashboard import forms
from jobmaster_dashboard.actions import protected
from jobmaster_dashboard.notices import notice_params
from jobmaster_dashboard.pages import registry_of
from jobmaster_dashboard.rendering import redirect

BATCH = 50
"""Jobs handled at the same time."""
MAX_JOBS = 10_000
"""Jobs one "all" request handles at most (press the button again for more)."""

Operation = Callable[[JobHandle[object]], Awaitable[object]]


async def _apply(operation: Operation, handles: list[JobHandle[object]]) -> list[str]:
    """Run the operation on every job; the ids of those it refused."""

    async def one(handle: JobHandle[object]) -> str | None:
        try:
            await operation(handle)
        except JobmasterError:
            return handle.id
        return None

    refused: list[str] = []
    for start in range(0, len(handles), BATCH):
        results = await asyncio.gather(*(one(h) for h in handles[start : start + BATCH]))
        refused += [job_id for job_id in results if job_id is not None]
    return refused


async def _all_failed(
    registry: Registry, queue: str, operation: Operation
) -> tuple[int, list[str]]:
    """Apply once to each job that is failed now (the newest ``MAX_JOBS``).

    The ids are read in one call before anything is done, so that a retried job that
    fails again meanwhile is not taken a second time.
    """
    failed = await registry.list_jobs(queue, JobState.FAILED, limit=MAX_JOBS)
    handles = [registry.handle(job.id, queue) for job in failed]
    refused = await _apply(operation, handles)
    return len(handles) - len(refused), refused


def _bulk(
    operation: Operation, done_message: str
) -> Callable[[Request, FormData], Awaitable[Response]]:
    async def act(request: Request, form: FormData) -> Response:
        registry = registry_of(request)
        queue = forms.text(form, "queue")
        if forms.text(form, "scope") == "all":
            done, refused = await _all_failed(registry, queue, operation)
        else:
            ids = list(dict.fromkeys(i for i in form.getlist("id") if isinstance(i, str) and i))
            refused = await _apply(operation, [registry.handle(i, queue) for i in ids])
            done = len(ids) - len(refused)
        only = forms.text(form, "only") or None
        return redirect(
            request, "/failed", queue=only, **notice_params(done_message, done, refused)
        )

    return act


async def _retry(handle: JobHandle[object]) -> object:
    return await handle.retry()


async def _delete(handle: JobHandle[object]) -> object:
    await handle.delete()
    return None


retry = protected(_bulk(_retry, "retried"))
delete = protected(_bulk(_delete, "deleted"))
