"""Middleware: hooks around enqueues and attempts, added with ``registry.use(middleware)``.

Order: ``before_*`` hooks run in the order the middleware was added; ``after_*`` hooks and
``on_final`` run in the reverse order (as dramatiq does), so the first middleware added wraps
all the others.

Error policy: a hook that raises is logged (with the middleware's class and the hook's name)
and skipped; the other middleware still runs and the job goes on as if the hook had returned.
A hook never loses, fails or delays a job.

Hooks are plain (synchronous) methods, called in the process that enqueues (enqueue hooks) or
in the worker's event loop (attempt hooks): keep them quick, hand slow work to a thread or a
queue of their own. A registry without middleware pays one emptiness check per enqueue and
nothing per attempt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

import structlog

_log = structlog.get_logger("jobmaster.middleware")

NO_HEADERS: Mapping[str, str] = MappingProxyType({})
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True, slots=True)
class EnqueueRequest:
    """Jobs about to be enqueued: ``count`` calls of job ``name`` into ``queue``.

    ``before_enqueue`` may add string ``headers`` (e.g. a trace context): they are written
    in the record of every job of the call, and the worker gives them to the attempt hooks
    (:attr:`AttemptInfo.headers`).
    """

    name: str
    queue: str
    count: int
    headers: dict[str, str] = field(default_factory=dict)


class AttemptInfo(NamedTuple):
    """An attempt a worker starts (a named tuple: one is made per attempt)."""

    job_id: str
    name: str
    queue: str
    attempt: int
    """The attempt's number (1 for the first)."""
    created_at: float
    """When the job was enqueued (Unix time, seconds)."""
    started_at: float
    """When the attempt started (Unix time, seconds)."""
    worker_id: str
    headers: Mapping[str, str] = NO_HEADERS
    """What the enqueue's middleware put in the job's record (see :class:`EnqueueRequest`)."""


class AttemptEnd(NamedTuple):
    """How an attempt ended, and the state its job goes to."""

    outcome: str
    """succeeded, failed, timed_out or cancelled."""
    next_state: str
    """succeeded, failed or cancelled (final), or scheduled (retried)."""
    duration: float
    """Seconds the attempt ran."""
    error_type: str = ""
    error_message: str = ""

    @property
    def final(self) -> bool:
        """Whether the job ends with this attempt."""
        return self.next_state in FINAL_STATES


class Middleware:
    """Hooks around enqueues and attempts; subclass it and override what you need.

    Every method does nothing by default. See :mod:`jobmaster.ops.middleware` for the order
    the hooks run in and what happens when one raises.
    """

    def before_enqueue(self, request: EnqueueRequest) -> None:
        """Called before jobs are written (after their arguments were validated)."""

    def after_enqueue(self, request: EnqueueRequest, job_ids: Sequence[str]) -> None:
        """Called once the jobs were written, with their ids (an id given with ``job_id=``
        that existed already is there too)."""

    def before_attempt(self, attempt: AttemptInfo) -> None:
        """Called in the worker as an attempt starts (its arguments were validated)."""

    def after_attempt(self, attempt: AttemptInfo, end: AttemptEnd) -> None:
        """Called in the worker when an attempt ended, before its end is written."""

    def on_final(self, attempt: AttemptInfo, end: AttemptEnd) -> None:
        """Called in the worker once Redis recorded that the job ended (succeeded, failed
        or cancelled) with this attempt; also for an attempt that could not start (its
        arguments no longer fit the handler), which got no other attempt hook."""

    def on_lost(self, queue: str, job_ids: Sequence[str], names: Sequence[str]) -> None:
        """Called in a worker that took back attempts whose worker died or whose lease
        expired (their jobs are queued again, or failed past ``max_lost``), with the name of
        each job ("" for one whose record could not be read)."""


def check_middleware(middleware: object) -> Middleware:
    """``middleware`` if it is a Middleware instance, else a TypeError saying what it is."""
    if isinstance(middleware, type) and issubclass(middleware, Middleware):
        raise TypeError(f"registry.use() takes a middleware instance: use {middleware.__name__}()")
    if not isinstance(middleware, Middleware):
        raise TypeError(f"registry.use() takes a jobmaster.Middleware, got {middleware!r}")
    return middleware


HOOKS = (
    "before_enqueue",
    "after_enqueue",
    "before_attempt",
    "after_attempt",
    "on_final",
    "on_lost",
)
_AFTER = frozenset({"after_enqueue", "after_attempt", "on_final"})


class Hooks:
    """Calls the hooks of a registry's middleware in order, each one guarded.

    Made only when the registry has middleware (callers keep ``None`` otherwise). Only the
    hooks a middleware overrides are called.
    """

    def __init__(self, middleware: Sequence[Middleware]) -> None:
        self.middleware = tuple(middleware)
        for hook in HOOKS:
            order = self.middleware[::-1] if hook in _AFTER else self.middleware
            overridden = [
                m for m in order if getattr(type(m), hook) is not getattr(Middleware, hook)
            ]
            setattr(self, f"_{hook}", tuple(overridden))
        self.wants_final = bool(self._on_final)
        """Whether a middleware has an ``on_final`` hook."""
        self.wants_attempts = bool(self._before_attempt or self._after_attempt or self._on_final)
        """Whether a middleware has an attempt hook (the worker then describes each attempt
        to them)."""
        self.wants_lost = bool(self._on_lost)
        """Whether a middleware has an ``on_lost`` hook (the worker then reads the names of
        the jobs it took back)."""

    def before_enqueue(self, request: EnqueueRequest) -> None:
        for middleware in self._before_enqueue:
            _call(middleware, "before_enqueue", request)

    def after_enqueue(self, request: EnqueueRequest, job_ids: Sequence[str]) -> None:
        for middleware in self._after_enqueue:
            _call(middleware, "after_enqueue", request, job_ids)

    def before_attempt(self, attempt: AttemptInfo) -> None:
        for middleware in self._before_attempt:
            try:
                middleware.before_attempt(attempt)
            except Exception:
                _logged(middleware, "before_attempt")

    def after_attempt(self, attempt: AttemptInfo, end: AttemptEnd) -> None:
        for middleware in self._after_attempt:
            try:
                middleware.after_attempt(attempt, end)
            except Exception:
                _logged(middleware, "after_attempt")

    def on_final(self, attempt: AttemptInfo, end: AttemptEnd) -> None:
        for middleware in self._on_final:
            try:
                middleware.on_final(attempt, end)
            except Exception:
                _logged(middleware, "on_final")

    def on_lost(self, queue: str, job_ids: Sequence[str], names: Sequence[str]) -> None:
        for middleware in self._on_lost:
            _call(middleware, "on_lost", queue, job_ids, names)

    _before_enqueue: tuple[Middleware, ...]
    _after_enqueue: tuple[Middleware, ...]
    _before_attempt: tuple[Middleware, ...]
    _after_attempt: tuple[Middleware, ...]
    _on_final: tuple[Middleware, ...]
    _on_lost: tuple[Middleware, ...]


def _call(middleware: Middleware, hook: str, *args: Any) -> None:
    try:
        getattr(middleware, hook)(*args)
    except Exception:
        _logged(middleware, hook)


def _logged(middleware: Middleware, hook: str) -> None:
    _log.exception(
        "a middleware hook raised; the job goes on",
        middleware=type(middleware).__qualname__,
        hook=hook,
    )
