"""Schedules: the operations on them, through one store.

A schedule binds a job and fixed arguments to a cron expression or an interval (see
:mod:`jobmaster.schedule_definition`). Those declared in code (``registry.schedule(...)``,
``@registry.job(cron=...)``) are synced to Redis when a worker starts; those added at run
time live in Redis only. Workers fire them (see :mod:`jobmaster.scheduler`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from jobmaster.codec import DecodeError, pack
from jobmaster.errors import ConfigError, JobmasterError, ScheduleExists, ScheduleNotFound
from jobmaster.handle import JobHandle
from jobmaster.models import Schedule
from jobmaster.schedule_definition import (
    ScheduleDefinition,
    ScheduleState,
    build_definition,
    encode_arguments,
    to_model,
)
from jobmaster.store import Fired, Saved, ScheduleFiring, ScheduleRecord, Store, TickJob

if TYPE_CHECKING:
    from jobmaster.handler import JobHandler
    from jobmaster.registry_view import DefinedJob, RegistryView

SAVE_ATTEMPTS = 10
"""Read-change-save rounds before giving up on a schedule that keeps changing."""


@dataclass(frozen=True)
class SyncReport:
    created: list[str]
    updated: list[str]
    removed: list[str]


class ScheduleBook:
    """The operations on a namespace's schedules, through one store."""

    def __init__(self, registry: RegistryView, store: Store) -> None:
        self.registry = registry
        self.store = store

    async def list(self) -> list[Schedule]:
        """Every schedule, by name, with its next run and its last job's state."""
        schedules: list[Schedule] = []
        for queue in await self.store.schedules.schedule_queues():
            records = await self.store.schedules.schedules(queue)
            states = [ScheduleState.decode(r.state) for r in records]
            last_ids = [s.last_job_id for s in states if s.last_job_id]
            job_states = dict(
                zip(last_ids, await self.store.inspection.job_states(queue, last_ids), strict=True)
            )
            for record, state in zip(records, states, strict=True):
                try:
                    schedules.append(to_model(record, job_states.get(state.last_job_id or "")))
                except DecodeError:
                    continue  # not written by this version of jobmaster: not listed
        return sorted(schedules, key=lambda s: s.name)

    async def get(self, name: str) -> Schedule:
        record = await self._find(name)
        state = ScheduleState.decode(record.state)
        job_state = None
        if state.last_job_id:
            job_state = (await self.store.inspection.job_states(record.queue, [state.last_job_id]))[
                0
            ]
        return to_model(record, job_state)

    async def _find(self, name: str) -> ScheduleRecord:
        queues = await self.store.schedules.locate_schedule(name)
        if len(queues) > 1:
            raise JobmasterError(f"schedule {name!r} exists in queues {', '.join(queues)}")
        records = await self.store.schedules.schedules(queues[0], [name]) if queues else []
        if not records:
            raise ScheduleNotFound(f"no schedule named {name!r}")
        return records[0]

    async def add(self, definition: ScheduleDefinition) -> Schedule:
        """Create a schedule; its first tick is the first one after now."""
        if await self.store.schedules.locate_schedule(definition.name):
            raise ScheduleExists(f"a schedule named {definition.name!r} exists already")
        if not await self._create(definition):
            raise ScheduleExists(f"a schedule named {definition.name!r} exists already")
        return await self.get(definition.name)

    async def _create(self, definition: ScheduleDefinition) -> bool:
        due = definition.rule.next_after(await self.store.inspection.server_time_ms())
        outcome, _ = await self.store.schedules.save_schedule(
            definition.queue, definition.name, create=True, definition=definition.encode(),
            due_ms=due,
        )  # fmt: skip
        return outcome is Saved.SAVED

    async def update(self, name: str, **changes: Any) -> Schedule:
        """Change a schedule's job, arguments, timing or catch-up policy.

        The next tick stays where it was unless the timing (cron, every, tz) changed; a
        paused schedule stays paused.
        """
        for _ in range(SAVE_ATTEMPTS):
            record = await self._find(name)
            current = ScheduleDefinition.decode(record.definition)
            new = self._changed(current, **changes)
            if await self._replace(record, new):
                return await self.get(name)
        raise JobmasterError(f"schedule {name!r} kept changing; try again")

    def _changed(
        self,
        current: ScheduleDefinition,
        *,
        job: str | JobHandler[Any, Any] | None = None,
        cron: str | None = None,
        every: float | timedelta | None = None,
        args: Mapping[str, Any] | Sequence[Any] | None = None,
        tz: str | None = None,
        catch_up: str | None = None,
        catch_up_limit: int | None = None,
    ) -> ScheduleDefinition:
        if cron is not None and every is not None:
            raise ConfigError(f"schedule {current.name!r}: give cron= or every=, not both")
        arguments, job_name, priority = current.args, current.job, current.priority
        if job is not None or args is not None:
            handler: DefinedJob
            if job is None or isinstance(job, str):
                handler = self.registry.get(job_name if job is None else job)
            else:
                handler = job
            moves = handler.definition.name != current.job
            if moves and handler.definition.queue != current.queue:
                raise ConfigError(
                    f"schedule {current.name!r} is on queue {current.queue!r} and job "
                    f"{job_name!r} goes to {handler.definition.queue!r}; delete the schedule "
                    f"and add it again to move it"
                )
            job_name, priority = handler.definition.name, handler.definition.priority
            arguments = encode_arguments(
                handler,
                current.args if args is None else args,
                self.registry.settings.max_payload,
            )
        keep_timing = cron is None and every is None
        return build_definition(
            current.name,
            job_name,
            current.queue,
            cron=current.cron if keep_timing else cron,
            every=current.every if keep_timing else every,
            tz=current.tz if tz is None else tz,
            arguments=arguments,
            catch_up=current.catch_up if catch_up is None else catch_up,
            catch_up_limit=current.catch_up_limit if catch_up_limit is None else catch_up_limit,
            priority=priority,
            source=current.source,
        )

    async def _replace(self, record: ScheduleRecord, new: ScheduleDefinition) -> bool:
        """Save ``new`` over ``record`` if the schedule did not change since it was read."""
        state = ScheduleState.decode(record.state)
        try:
            same_timing = ScheduleDefinition.decode(record.definition).timing == new.timing
        except DecodeError:
            same_timing = False
        due = -1
        if not same_timing and not state.paused:
            due = new.rule.next_after(await self.store.inspection.server_time_ms())
        outcome, _ = await self.store.schedules.save_schedule(
            record.queue, record.name, create=False, definition=new.encode(),
            revision=state.revision, paused=state.paused, due_ms=due,
        )  # fmt: skip
        if outcome is Saved.MISSING:
            raise ScheduleNotFound(f"no schedule named {record.name!r}")
        return outcome is Saved.SAVED

    async def pause(self, name: str) -> Schedule:
        """Stop a schedule's ticks until it is resumed."""
        record = await self._find(name)
        outcome, _ = await self.store.schedules.save_schedule(
            record.queue, name, create=False, paused=True
        )
        if outcome is Saved.MISSING:
            raise ScheduleNotFound(f"no schedule named {name!r}")
        return await self.get(name)

    async def resume(self, name: str) -> Schedule:
        """Start a paused schedule again from its next tick (ticks missed meanwhile are
        not run)."""
        for _ in range(SAVE_ATTEMPTS):
            record = await self._find(name)
            state = ScheduleState.decode(record.state)
            if not state.paused:
                return await self.get(name)
            rule = ScheduleDefinition.decode(record.definition).rule
            due = rule.next_after(await self.store.inspection.server_time_ms())
            outcome, _ = await self.store.schedules.save_schedule(
                record.queue, name, create=False, revision=state.revision, due_ms=due
            )
            if outcome is Saved.MISSING:
                raise ScheduleNotFound(f"no schedule named {name!r}")
            if outcome is Saved.SAVED:
                return await self.get(name)
        raise JobmasterError(f"schedule {name!r} kept changing; try again")

    async def trigger(self, name: str) -> JobHandle[Any]:
        """Enqueue the schedule's job now, as a normal job; the next tick is unchanged."""
        record = await self._find(name)
        definition = ScheduleDefinition.decode(record.definition)
        created_ms = int(time.time() * 1000)
        job = TickJob(
            f"{name}@run-{uuid.uuid4().hex[:12]}", definition.job_record(created_ms), created_ms
        )
        controls = controls_of(self.registry.jobs, definition)
        firing = ScheduleFiring(name, -1, -1, -1, definition.priority, [job], controls)
        results, _ = await self.store.schedules.fire_schedules(record.queue, [firing])
        if results[0].outcome is not Fired.FIRED:
            raise ScheduleNotFound(f"no schedule named {name!r}")
        handler = self.registry.jobs.get(definition.job)
        return JobHandle(
            self.registry,
            job.id,
            record.queue,
            signature=handler.signature if handler is not None else None,
        )

    async def delete(self, name: str) -> None:
        """Delete a schedule; the jobs it enqueued are left alone."""
        deleted = False
        for queue in await self.store.schedules.locate_schedule(name):
            deleted = await self.store.schedules.delete_schedule(queue, name) or deleted
        if not deleted:
            raise ScheduleNotFound(f"no schedule named {name!r}")

    async def sync(self, declared: Mapping[str, ScheduleDefinition]) -> SyncReport:
        """Make Redis hold the schedules declared in code: create the new ones, update the
        changed ones (keeping their state), delete code-declared ones no longer declared.
        Schedules added at run time are left alone (unless code declares the same name)."""
        existing: dict[str, list[ScheduleRecord]] = {}
        for queue in await self.store.schedules.schedule_queues():
            for record in await self.store.schedules.schedules(queue):
                existing.setdefault(record.name, []).append(record)
        report = SyncReport([], [], [])
        for name, definition in declared.items():
            records = existing.pop(name, [])
            for stale in [r for r in records if r.queue != definition.queue]:
                await self.store.schedules.delete_schedule(stale.queue, name)
                records.remove(stale)
            if not records:
                await self._create(definition)  # False: another worker synced it just now
                report.created.append(name)
            elif _definition_of(records[0]) != definition:
                await self._sync_one(records[0], definition)
                report.updated.append(name)
        for name, records in existing.items():
            for record in records:
                current = _definition_of(record)
                if current is not None and current.source == "code":
                    await self.store.schedules.delete_schedule(record.queue, name)
                    report.removed.append(name)
        return report

    async def _sync_one(self, record: ScheduleRecord, definition: ScheduleDefinition) -> None:
        for _ in range(SAVE_ATTEMPTS):
            if await self._replace(record, definition):
                return
            records = await self.store.schedules.schedules(definition.queue, [definition.name])
            if not records or _definition_of(records[0]) == definition:
                return  # deleted meanwhile, or another worker synced it
            record = records[0]


def _definition_of(record: ScheduleRecord) -> ScheduleDefinition | None:
    try:
        return ScheduleDefinition.decode(record.definition)
    except DecodeError:
        return None


def controls_of(jobs: Mapping[str, DefinedJob], definition: ScheduleDefinition) -> str:
    """The flow controls' line of a schedule's jobs (see flow_control.py), when its job is
    declared here with controls; else empty."""
    handler = jobs.get(definition.job)
    controls = handler.controls if handler is not None else None
    if controls is None or not controls.active:
        return ""
    return controls.line(pack(definition.args))
