"""The feed behind :meth:`jobmaster.Registry.events`: every job's state changes as they come.

The feed blocks on a connection of its own, so that several feeds do not queue behind each
other's blocking reads, and a cancelled feed stops at once: the read it waits on is
abandoned rather than awaited (as the worker does with its own reads), since a client
library may hold, or even swallow, the cancellation of a blocked read. An entry of the
events stream that cannot be decoded is skipped, counted and logged; the feed goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import structlog

from jobmaster.models import JobEvent
from jobmaster.records import from_ms
from jobmaster.store import Event, Store

T = TypeVar("T")

NO_QUEUES_SLEEP = 1.0
"""Seconds between looks for queues when there are none yet."""


async def event_feed(
    store: Store,
    queues: Sequence[str] | None,
    start: bytes,
    redis_errors: Callable[[], AbstractContextManager[None]],
) -> AsyncGenerator[JobEvent, None]:
    """Events of ``queues`` (None: every queue, including later ones) after the stream
    position ``start``. ``redis_errors`` turns a lost connection into jobmaster's error."""
    fixed = list(queues) if queues is not None else None
    block_ms = 2000 if fixed is None else 5000  # every queue: look for new ones now and then
    positions: dict[str, bytes] = {}
    reader = store.inspection.new_reader()
    skipped = 0

    async def read() -> tuple[list[Event], int]:
        for queue in fixed if fixed is not None else await store.inspection.queues():
            positions.setdefault(queue, start)
        if not positions:
            await asyncio.sleep(NO_QUEUES_SLEEP)
            return [], 0
        return await store.inspection.read_event_batch(positions, block_ms, reader=reader)

    try:
        while True:
            with redis_errors():
                batch, bad = await abandoned_on_cancel(read())
            if bad:
                skipped += bad
                _log().warning(
                    "skipped event entries that cannot be decoded", count=bad, total=skipped
                )
            for event in batch:
                yield JobEvent(
                    queue=event.queue,
                    job_id=event.job_id,
                    state=event.state,
                    at=from_ms(event.at_ms),
                    group=event.group,
                )
    finally:
        if reader is not None:
            await reader.close()


async def abandoned_on_cancel(coro: Awaitable[T]) -> T:
    """Await ``coro``; if the caller is cancelled, cancel it and return at once, without
    waiting for it to end."""
    task = asyncio.ensure_future(coro)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.cancel()
        task.add_done_callback(_consume)
        raise


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned future's outcome, so that it is not reported as unretrieved."""
    if not future.cancelled():
        future.exception()


def _log() -> Any:
    return structlog.get_logger("jobmaster.events")
