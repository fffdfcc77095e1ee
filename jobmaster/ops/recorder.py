"""Attempt recorders: middleware that the worker tells of attempt ends directly, a batch at a
time, with its own records of the attempts, instead of through the attempt hooks.

The hooks cost a worker two named tuples and a few calls per attempt (about a quarter more CPU
per no-op job); a recorder costs the worker one clock reading per attempt, and one call per
batch of ends it records. :class:`jobmaster.ops.metrics.WorkerMetrics` is one. The worker
calls its methods in its event loop thread only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence, Sized
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

    @property
    def ended(self) -> float:
        """When the attempt ended (``time.monotonic()``; 0.0 while it runs)."""
        ...


class EndedAs(Protocol):
    """How an attempt ended (the worker's completion)."""

    @property
    def next_state(self) -> str: ...


class RunningTable(Sized, Protocol):
    """The worker's running attempts."""

    def values(self) -> tuple[RecordedAttempt, ...]: ...


Held = Callable[[], Iterable[RecordedAttempt]]
"""The attempts that ended and whose end the worker has not recorded yet."""


class AttemptRecorder(Middleware):
    """A middleware the worker feeds itself (see the module's docstring)."""

    def attach(self, running: RunningTable, held: Held, loop: asyncio.AbstractEventLoop) -> None:
        """The worker starts: its running attempts, those ended but not recorded yet, and
        the loop that calls the recorder."""

    def attempts_recorded(
        self, ended: Sequence[tuple[RecordedAttempt, EndedAs]], recorded: Sequence[int]
    ) -> None:
        """A batch of attempt ends was written (also of attempts whose job could not be
        decoded or validated, which end failed at once), with what Redis did with each
        (a :class:`jobmaster.store.Recorded` value)."""

    def attempt_abandoned(self, job: RecordedAttempt) -> None:
        """An attempt stopped without an end to write: handed back at shutdown, or its lease
        was lost."""


class Recorders(AttemptRecorder):
    """Several recorders, told in turn."""

    def __init__(self, recorders: list[AttemptRecorder]) -> None:
        self.recorders = recorders

    def attempts_recorded(
        self, ended: Sequence[tuple[RecordedAttempt, EndedAs]], recorded: Sequence[int]
    ) -> None:
        for recorder in self.recorders:
            recorder.attempts_recorded(ended, recorded)

    def attempt_abandoned(self, job: RecordedAttempt) -> None:
        for recorder in self.recorders:
            recorder.attempt_abandoned(job)


def worker_recorder(
    hooks: Hooks | None, running: RunningTable, held: Held, loop: asyncio.AbstractEventLoop
) -> AttemptRecorder | None:
    """The attempt recorder of a worker (its metrics), attached to its attempts and loop;
    None when the registry's middleware holds none."""
    middleware = hooks.middleware if hooks is not None else ()
    recorders = [m for m in middleware if isinstance(m, AttemptRecorder)]
    for recorder in recorders:
        recorder.attach(running, held, loop)
    if len(recorders) > 1:
        return Recorders(recorders)
    return recorders[0] if recorders else None
