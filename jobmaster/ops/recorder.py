"""Attempt recorders: middleware that the worker tells of each attempt's end directly, with
the worker's own record of the attempt, instead of through the attempt hooks.

The hooks cost a worker two named tuples and a few calls per attempt (about a quarter more CPU
per no-op job); a recorder costs one call. :class:`jobmaster.ops.metrics.WorkerMetrics` is
one. The worker calls its methods in its event loop thread only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sized
from typing import Protocol

from jobmaster.ops.middleware import Hooks, Middleware


class RecordedAttempt(Protocol):
    """What a recorder reads of an attempt (the worker's record of a running job)."""

    @property
    def queue(self) -> str: ...

    @property
    def name(self) -> str:
        """The job's name ("" when its record could not be decoded)."""
        ...

    @property
    def attempt(self) -> int: ...

    @property
    def started(self) -> float:
        """When the attempt started (``time.monotonic()``)."""
        ...

    @property
    def created_ms(self) -> int:
        """When the job was enqueued (Unix time, ms; 0 when unknown)."""
        ...


class RunningTable(Sized, Protocol):
    """The worker's running attempts."""

    def values(self) -> tuple[RecordedAttempt, ...]: ...


class AttemptRecorder(Middleware):
    """A middleware the worker feeds itself (see the module's docstring)."""

    def attach(self, running: RunningTable, loop: asyncio.AbstractEventLoop) -> None:
        """The worker starts: its running attempts, and the loop that calls the recorder."""

    def attempt_ended(self, job: RecordedAttempt, next_state: str, ended: float) -> None:
        """An attempt ended (also one whose job could not be decoded or validated, which ends
        failed at once): the state its job goes to, and when it ended
        (``time.monotonic()``). Called before its end is written."""

    def attempt_abandoned(self, job: RecordedAttempt) -> None:
        """An attempt stopped without an end to write: handed back at shutdown, or its lease
        was lost."""


class Recorders(AttemptRecorder):
    """Several recorders, told in turn."""

    def __init__(self, recorders: list[AttemptRecorder]) -> None:
        self.recorders = recorders

    def attempt_ended(self, job: RecordedAttempt, next_state: str, ended: float) -> None:
        for recorder in self.recorders:
            recorder.attempt_ended(job, next_state, ended)

    def attempt_abandoned(self, job: RecordedAttempt) -> None:
        for recorder in self.recorders:
            recorder.attempt_abandoned(job)


def worker_recorder(
    hooks: Hooks | None, running: RunningTable, loop: asyncio.AbstractEventLoop
) -> AttemptRecorder | None:
    """The attempt recorder of a worker (its metrics), attached to its running attempts and
    loop; None when the registry's middleware holds none."""
    middleware = hooks.middleware if hooks is not None else ()
    recorders = [m for m in middleware if isinstance(m, AttemptRecorder)]
    for recorder in recorders:
        recorder.attach(running, loop)
    if len(recorders) > 1:
        return Recorders(recorders)
    return recorders[0] if recorders else None
