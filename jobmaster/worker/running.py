"""The attempts a worker runs: one table, shared by the parts that start, end, cancel and
watch them."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from jobmaster.store import Lease
from jobmaster.worker.attempt import Cancelled, RunningJob


class RunningAttempts:
    """Attempts running in a worker, by (queue, job id, lease token): a job may have an old
    attempt still running (its lease lost) beside its new one.

    Also counts the suspect jobs (lost before) the worker holds, running or ended but not yet
    recorded (it holds one at a time), and says when a slot may have been freed.

    The lease keeper reads the table from its own thread: it copies it with ``tuple()``,
    which the GIL makes atomic (no Python code runs in between), before it iterates.

    Args:
        log: the worker's logger.
    """

    def __init__(self, log: Any) -> None:
        self._jobs: dict[tuple[str, str, str], RunningJob] = {}
        self._log = log
        self.suspects = 0
        """Leases of suspect jobs held, running or ended but not yet recorded."""
        self.slot_freed = asyncio.Event()
        """Set when an attempt ends or a suspect's end is recorded (and on stop)."""

    def __len__(self) -> int:
        return len(self._jobs)

    def __bool__(self) -> bool:
        return bool(self._jobs)

    def values(self) -> tuple[RunningJob, ...]:
        """The running attempts (a copy: safe from any thread)."""
        return tuple(self._jobs.values())

    def get(self, queue: str, job_id: str, token: str) -> RunningJob | None:
        return self._jobs.get((queue, job_id, token))

    def add(self, job: RunningJob) -> bool:
        """A claimed job starts; True when it is the only one running."""
        if job.suspect:
            self.suspects += 1
        jobs = self._jobs
        jobs[(job.queue, job.job_id, job.token)] = job
        return len(jobs) == 1

    def remove(self, job: RunningJob, *, end_pending: bool) -> None:
        """An attempt stopped running; ``end_pending`` when its end is still to be recorded
        (a suspect keeps its place until then)."""
        del self._jobs[(job.queue, job.job_id, job.token)]
        if job.suspect and not end_pending:
            self.suspects -= 1
        self.slot_freed.set()

    def recorded_suspects(self, count: int) -> None:
        """The ends of ``count`` suspect attempts were recorded: another may be claimed."""
        self.suspects -= count
        self.slot_freed.set()

    def job_ids(self) -> list[str]:
        """The ids of the jobs running now (from any thread)."""
        return [job.job_id for job in tuple(self._jobs.values())]

    def leases(self) -> defaultdict[str, list[Lease]]:
        """The leases of the running attempts, by queue (from any thread)."""
        leases: defaultdict[str, list[Lease]] = defaultdict(list)
        for job in tuple(self._jobs.values()):
            leases[job.queue].append(Lease(job.job_id, job.token))
        return leases

    def cancel(self, queue: str, job_id: str, token: str | None) -> None:
        """Cancel the running attempt of a job (the one holding ``token``, when given)."""
        if token is not None:
            job = self._jobs.get((queue, job_id, token))
        else:
            held = (j for j in self._jobs.values() if j.queue == queue and j.job_id == job_id)
            job = next((j for j in held if not j.lease_lost), None)
        if job is None or job.abort is not None:
            return
        self._log.info("cancelling a running attempt on request", job_id=job_id)
        job.end(Cancelled("the job was cancelled while this attempt ran"))

    def abandon(self, queue: str, lost: Sequence[Lease]) -> None:
        """Another worker took over these leases: stop their attempts, recording nothing."""
        for lease in lost:
            job = self._jobs.get((queue, lease.job_id, lease.token))
            if job is None or job.lease_lost:
                continue
            self._log.warning("lease lost; abandoning the attempt", job_id=lease.job_id)
            job.lease_lost = True
            if job.ctx is not None:
                job.ctx.cancelled.set()
            if job.task is not None:
                job.task.cancel()
