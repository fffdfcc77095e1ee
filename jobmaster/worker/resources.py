"""What a worker advertises with ``--resources cpu=8,gpu=2,mem=64G``, and what of it is free:
each claim tells the script what the worker has free, and the script starts only the jobs
whose ``resources=`` fit (see ``lua/limits.lua``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgpack

from jobmaster.flow_control import parse_resources, resources_text
from jobmaster.store import ClaimedJob
from jobmaster.worker.running import RunningAttempts

NeedsOf = Callable[[str], Mapping[str, float]]
"""A job's resources by its name (empty for a job that declares none)."""


class WorkerResources:
    """A worker's advertised resources and the needs of the attempts it runs.

    Args:
        capacity: what the worker advertises (name -> amount).
        needs_of: a job's needs by its name.
    """

    def __init__(self, capacity: Mapping[str, float], needs_of: NeedsOf) -> None:
        self.capacity = dict(capacity)
        self._needs_of = needs_of
        self._needs: dict[tuple[str, str, int], Mapping[str, float]] = {}

    @classmethod
    def of(
        cls, resources: Mapping[str, Any] | str | None, needs_of: NeedsOf
    ) -> WorkerResources | None:
        """The resources of a worker given ``resources`` (None: it advertises none, and
        every job fits it).

        Raises:
            ValueError: the resources cannot be read.
        """
        if resources is None:
            return None
        return cls(parse_resources(resources), needs_of)

    def claimed(self, queue: str, job: ClaimedJob) -> None:
        """A claimed job starts here: its needs are taken from what is free."""
        try:
            name = msgpack.unpackb(job.record, raw=False).get("n", "")
        except Exception:  # a record that cannot be read fails in its attempt
            return
        needs = self._needs_of(name) if isinstance(name, str) else {}
        if needs:
            self._needs[(queue, job.id, job.attempt)] = needs

    def free(self, running: RunningAttempts) -> str:
        """What is free now, as the claim script reads it."""
        used: dict[str, float] = {}
        live = set()
        for job in running.values():
            key = (job.queue, job.job_id, job.attempt)
            live.add(key)
            for name, amount in self._needs.get(key, {}).items():
                used[name] = used.get(name, 0.0) + amount
        for key in [k for k in self._needs if k not in live]:
            del self._needs[key]
        return resources_text({n: c - used.get(n, 0.0) for n, c in self.capacity.items()})
