"""Live updates: ``GET /events`` streams job state changes as Server-Sent Events.

One :class:`EventHub` per app reads :meth:`jobmaster.Registry.events` (one Redis
connection however many browsers listen) and hands each event to the open streams that
want it. A stream sends:

- ``state``: ``{"queue", "job", "state", "at"}`` for every state change it asked for
  (not with ``counts=1``);
- ``counts``: ``{"queue", "counts": {state: n}}`` (with ``counts=1``, instead of the state
  changes), at most once a second per queue that changed;
- ``output``: ``{"queue", "job"}`` (with ``job=``) when the job's attempts, log lines or
  progress changed without a state change: a running job is re-read about once a second;
- ``gone``: the job (``job=``) no longer exists (then the stream ends);
- ``resync``: events were dropped because the browser read too slowly (a counts stream
  reads every queue's counts again instead);
- a ``: keep-alive`` comment every 15 seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from jobmaster import Job, JobEvent, JobNotFound, JobState, RedisUnavailable, Registry

log = structlog.get_logger("jobmaster_dashboard.live")

KEEPALIVE_SECONDS = 15.0
RECHECK_SECONDS = 1.0
"""How often a stream re-reads its job while the job has not finished."""
FINISHED_RECHECK_SECONDS = 10.0
"""How often it checks that a finished job still exists (deleting one sends no event)."""
COUNTS_SECONDS = 1.0
"""Counts of a queue are sent at most this often."""
BUFFER = 1000
"""Events kept for a stream that reads slowly; beyond that it gets ``resync``."""
REPLAY_SECONDS = 1.0
"""Events from this long before the reader starts are read too (a stream may see a change
twice; state events are idempotent)."""
RETRY_MS = 3000
"""How long a browser waits before reconnecting a dropped stream."""


class Subscription:
    """The events one stream asked for, waiting to be sent."""

    def __init__(self, queues: frozenset[str] | None, job_id: str | None) -> None:
        self.queues = queues
        self.job_id = job_id
        self.pending: asyncio.Queue[JobEvent] = asyncio.Queue(BUFFER)
        self.overflowed = False

    def offer(self, event: JobEvent) -> None:
        if self.queues is not None and event.queue not in self.queues:
            return
        if self.job_id is not None and event.job_id != self.job_id:
            return
        try:
            self.pending.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True

    def drain(self) -> list[JobEvent]:
        events = []
        while not self.pending.empty():
            events.append(self.pending.get_nowait())
        return events


class EventHub:
    """Reads the registry's events while at least one stream is open."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._subscriptions: set[Subscription] = set()
        self._reader: asyncio.Task[None] | None = None

    @property
    def listeners(self) -> int:
        return len(self._subscriptions)

    def subscribe(self, queues: frozenset[str] | None, job_id: str | None) -> Subscription:
        subscription = Subscription(queues, job_id)
        self._subscriptions.add(subscription)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read())
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget a stream; the last one to go stops the reader (without waiting for it,
        so that this also works from a cancelled stream's cleanup)."""
        self._subscriptions.discard(subscription)
        if not self._subscriptions and self._reader is not None:
            self._reader.cancel()
            self._reader = None

    async def close(self) -> None:
        self._subscriptions.clear()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.wait([reader], timeout=1.0)

    async def _read(self) -> None:
        # From a little before the first stream opened (so that a change made while the
        # reader starts is not missed), and after an error from the last event seen.
        since = datetime.now(UTC) - timedelta(seconds=REPLAY_SECONDS)
        delay = 0.5
        while self._subscriptions:
            events = self._registry.events(since=since)
            try:
                async for event in events:
                    delay = 0.5
                    since = event.at
                    for subscription in list(self._subscriptions):
                        subscription.offer(event)
            except Exception as exc:  # Redis went away: streams keep their keep-alives
                log.warning("reading job events failed; retrying", error=str(exc), delay=delay)
                for subscription in list(self._subscriptions):
                    subscription.overflowed = True  # they may have missed events
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            finally:
                if isinstance(events, AsyncGenerator):
                    await events.aclose()


def message(event: str, data: Mapping[str, Any]) -> str:
    """One Server-Sent Event (JSON on one line, so it never breaks the framing)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def state_message(event: JobEvent) -> str:
    return message(
        "state",
        {
            "queue": event.queue,
            "job": event.job_id,
            "state": event.state.value,
            "at": event.at.isoformat(),
        },
    )


class JobWatch:
    """One job as a stream last saw it: its state, and what its attempts looked like."""

    def __init__(self, registry: Registry, queue: str, job_id: str) -> None:
        self.handle = registry.handle(job_id, queue)
        self.state: JobState | None = None
        self.output: tuple[Any, ...] | None = None
        self.next_check = 0.0
        self.gone = False

    @staticmethod
    def _output(job: Job) -> tuple[Any, ...]:
        last = job.attempts[-1] if job.attempts else None
        if last is None:
            return (0,)
        return (len(job.attempts), last.outcome, len(last.logs), last.progress)

    def due(self, now: float) -> bool:
        return not self.gone and now >= self.next_check

    async def check(self, now: float, *, saw_event: bool = False) -> list[str]:
        """Re-read the job: messages for what changed that no event has told.

        After an event the job is read only to remember its attempts (the event said
        the state); a running job is read whole, a waiting one only for its state.
        """
        self.next_check = now + RECHECK_SECONDS
        ids = {"queue": self.handle.queue, "job": self.handle.id}
        output: tuple[Any, ...] | None
        try:
            if saw_event or self.state in (None, JobState.ACTIVE):
                job = await self.handle.info()
                state, output = job.state, self._output(job)
            else:
                state, output = await self.handle.state(), self.output
        except JobNotFound:
            self.gone = True
            return [message("gone", ids)]
        if state.is_final:
            self.next_check = now + FINISHED_RECHECK_SECONDS
        messages = []
        if not saw_event:
            if state is not self.state:
                messages.append(message("state", {**ids, "state": state.value, "at": None}))
            elif self.output is not None and output != self.output:
                messages.append(message("output", ids))
        self.state, self.output = state, output
        return messages


async def _counts(registry: Registry, queues: set[str]) -> list[str]:
    found = await asyncio.gather(*(registry.count_jobs(q) for q in sorted(queues)))
    return [
        message("counts", {"queue": queue, "counts": {s.value: n for s, n in counts.items()}})
        for queue, counts in zip(sorted(queues), found, strict=True)
    ]


async def _stream(
    request: Request,
    queues: frozenset[str] | None,
    job_id: str | None,
    with_counts: bool,
) -> AsyncIterator[str]:
    registry: Registry = request.app.state.registry
    hub: EventHub = request.app.state.event_hub
    loop = asyncio.get_running_loop()
    subscription = hub.subscribe(queues, job_id)
    watch = JobWatch(registry, next(iter(queues or ())), job_id) if job_id else None
    try:
        yield f"retry: {RETRY_MS}\n\n"
        if watch is not None:  # read after subscribing: no change can fall in between
            for chunk in await watch.check(loop.time()):
                yield chunk
        to_count: set[str] = set(queues or ()) if with_counts else set()
        next_count = 0.0
        last_write = loop.time()
        while not await request.is_disconnected():
            first: JobEvent | None = None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(RECHECK_SECONDS, COUNTS_SECONDS)):
                    first = await subscription.pending.get()
            events = ([first] if first is not None else []) + subscription.drain()
            missed = subscription.overflowed
            subscription.overflowed = False
            if with_counts:  # the overview needs only to know which queues changed
                chunks = []
                to_count.update(event.queue for event in events)
            else:
                chunks = [state_message(event) for event in events]
                chunks += [message("resync", {})] if missed else []
            now = loop.time()
            try:
                if with_counts and missed:
                    to_count.update(queues or await registry.known_queues())
                if watch is not None and (events or watch.due(now)):
                    chunks += await watch.check(now, saw_event=bool(events))
                if with_counts and to_count and now >= next_count:
                    chunks += await _counts(registry, to_count)
                    to_count.clear()
                    next_count = now + COUNTS_SECONDS
            except RedisUnavailable as exc:  # keep the stream; try again on the next turn
                log.warning("live update failed", error=str(exc))
            if not chunks and now - last_write >= KEEPALIVE_SECONDS:
                chunks.append(": keep-alive\n\n")
            if chunks:
                last_write = now
                yield "".join(chunks)
            if watch is not None and watch.gone:
                break
    finally:
        hub.unsubscribe(subscription)


async def events(request: Request) -> Response:
    """``GET /events?queue=a&queue=b&job=ID&counts=1`` as ``text/event-stream``.

    Without ``queue``: every queue (also those that appear later). ``job`` needs exactly
    one ``queue``. With ``counts=1`` the stream sends each changed queue's counts instead
    of every job's state change.
    """
    params = request.query_params
    names = [q for q in params.getlist("queue") if q]
    queues = frozenset(names) if names else None
    job_id = params.get("job") or None
    if job_id is not None:
        if queues is None or len(queues) != 1:
            return PlainTextResponse("job= needs exactly one queue=", status_code=400)
        registry: Registry = request.app.state.registry
        try:
            await registry.handle(job_id, names[0]).state()
        except JobNotFound as exc:
            return PlainTextResponse(str(exc), status_code=404)
    return StreamingResponse(
        _stream(request, queues, job_id, params.get("counts") == "1"),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
