"""The scheduler loop every worker runs: fires the due ticks of its queues' schedules.

Any number of workers run it. Per queue, a lease (``scheduler_lease``, renewed by its
holder) picks one leader that does the work; the others only check the lease, and one of
them takes over about one lease after the leader stops renewing. Correctness does not rest
on the lease: a tick's job has the id ``<schedule>@<tick ms>`` and is created by a script
that also advances the schedule's next due time with compare-and-set, so two schedulers that
both believe they lead cannot fire a tick twice, or skip one.

Ticks that fell due while no scheduler ran at all (the lease was free for more than two
leases) follow each schedule's catch-up policy; ticks that are merely late (a slow pass, a
leader handing over to another) are always fired.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog

from jobmaster.codec import DecodeError
from jobmaster.cron import plan_ticks
from jobmaster.errors import describe
from jobmaster.schedule_definition import ScheduleDefinition, ScheduleState
from jobmaster.schedules import ScheduleBook, controls_of
from jobmaster.store import ScheduleFiring, ScheduleRecord, SchedulerLease, Store, TickJob

if TYPE_CHECKING:
    from jobmaster.registry import Registry

BLOCK_MS = 5_000
"""Longest blocking read for schedule changes (shorter waits come from due times)."""
FIRE_BATCH = 100
"""Due schedules read and fired per script call."""
FIRE_ROUNDS = 10
"""Fire calls per pass before the loop yields (more follow at once)."""
UNREADABLE_RETRY_MS = 60_000
"""How long a schedule whose definition cannot be read waits before the next try."""
RELEASE_TIMEOUT = 1.0
RETRY_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)


class Scheduler:
    """Fires the due schedules of ``queues`` while it holds their leases.

    Args:
        registry: whose code-declared schedules are synced at start (and settings used).
        store: the worker's store.
        queues: the queues whose schedules this scheduler may fire.
        holder: the lease holder's id (the worker id).
        sync: sync the registry's code-declared schedules to Redis first.
    """

    def __init__(
        self,
        registry: Registry,
        store: Store,
        queues: Sequence[str],
        holder: str,
        *,
        sync: bool = True,
        log: Any = None,
        closed: asyncio.Event | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.queues = list(queues)
        self.holder = holder
        self.sync = sync
        self.lease_ms = int(registry.settings.scheduler_lease * 1000)
        self.renew_every = registry.settings.scheduler_lease / 3
        self.log = log if log is not None else structlog.get_logger("jobmaster.scheduler")
        self.jobs_created = 0
        self.closed = closed
        """Set when the scheduler should stop: :meth:`run` returns at its next wait (a
        cancellation alone may be swallowed by a client library)."""
        self._led: dict[str, bytes] = {}
        """Queues this scheduler leads -> newest schedule_wake entry id seen."""
        self._wake: asyncio.Future[bool] | None = None
        self._wake_from: dict[str, bytes] = {}

    async def run(self) -> None:
        """Sync the declared schedules, then fire due ticks until cancelled."""
        failures = 0
        try:
            while not self._closing():
                try:
                    if self.sync:
                        await self._hold_leases()  # so that new schedules are not "missed"
                        await self._sync_declared()
                        self.sync = False
                    await self._sleep(await self.tick())
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # Redis went away: keep going, back off
                    self._cancel_wake()
                    delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
                    failures += 1
                    self.log.warning(
                        "scheduler failed; retrying", error=describe(exc), retry_in=delay
                    )
                    await self._pause(delay)
        finally:
            self._cancel_wake()
            await self._release()

    async def tick(self) -> float:
        """Renew or take the leases, fire what is due where leading; seconds to sleep."""
        loop = asyncio.get_running_loop()
        wait = self.renew_every
        led: dict[str, bytes] = {}
        for queue in self.queues:
            lease = await self.store.schedules.scheduler_lease(queue, self.holder, self.lease_ms)
            if not lease.leader:
                # Look again when the lease could expire (a little after, so as not to race).
                wait = min(wait, lease.lease_left_ms / 1000 + random.uniform(0.005, 0.05))
                continue
            led[queue] = lease.wake_id
            next_due = lease.next_due_ms
            if next_due == 0:
                next_due = await self._fire_due(queue, lease, loop.time())
            if next_due >= 0:
                wait = min(wait, next_due / 1000)
        if set(led) != set(self._led):
            self.log.info("scheduler leads queues", queues=sorted(led))
        self._led = led
        return max(0.0, wait)

    async def _hold_leases(self) -> None:
        for queue in self.queues:
            await self.store.schedules.scheduler_lease(queue, self.holder, self.lease_ms)

    async def _sync_declared(self) -> None:
        report = await ScheduleBook(self.registry, self.store).sync(
            self.registry.declared_schedules
        )
        if report.created or report.updated or report.removed:
            self.log.info(
                "schedules synced",
                created=report.created,
                updated=report.updated,
                removed=report.removed,
            )

    async def _fire_due(self, queue: str, lease: SchedulerLease, replied_at: float) -> int:
        """Fire the due schedules of a queue; ms until the next one is due (-1: none)."""
        loop = asyncio.get_running_loop()
        gap = (lease.gap_from_ms, lease.gap_to_ms)
        next_due = 0
        for _ in range(FIRE_ROUNDS):
            now = lease.now_ms + int((loop.time() - replied_at) * 1000)
            records = await self.store.schedules.due_schedules(queue, now, FIRE_BATCH)
            firings = [f for r in records if (f := self._firing(r, now, gap)) is not None]
            results, next_due = await self.store.schedules.fire_schedules(queue, firings)
            created = sum(r.created for r in results)
            self.jobs_created += created
            if created:
                self.log.debug("schedules fired", queue=queue, jobs=created)
            if next_due != 0:
                break
        return next_due

    def _firing(
        self, record: ScheduleRecord, now: int, gap: tuple[int, int]
    ) -> ScheduleFiring | None:
        state = ScheduleState.decode(record.state)
        if state.paused or state.due is None:
            return None
        try:
            definition = ScheduleDefinition.decode(record.definition)
        except DecodeError as exc:
            self.log.error(
                "schedule cannot be read; skipping it", schedule=record.name, error=str(exc)
            )
            return ScheduleFiring(
                record.name, state.revision, state.due, now + UNREADABLE_RETRY_MS, 0, []
            )
        plan = plan_ticks(
            definition.rule, state.due, now, gap, definition.catch_up, definition.catch_up_limit
        )
        created_ms = int(time.time() * 1000)
        record_bytes = definition.job_record(created_ms)
        jobs = [TickJob(f"{definition.name}@{tick}", record_bytes, tick) for tick in plan.ticks]
        if gap[0] < state.due < gap[1]:
            self.log.info(
                "schedule missed ticks while no scheduler ran",
                schedule=definition.name,
                catch_up=definition.catch_up,
                firing=len(jobs),
            )
        return ScheduleFiring(
            definition.name,
            state.revision,
            state.due,
            plan.next_due,
            definition.priority,
            jobs,
            controls_of(self.registry.jobs, definition),
        )

    async def _sleep(self, seconds: float) -> None:
        """Sleep (on the event loop's clock: Redis checks blocking timeouts only on its
        ``hz`` tick) until due, or until a schedule of a queue this scheduler leads is
        saved. The blocking read stays pending across sleeps rather than being cancelled."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        if not self._led:
            self._cancel_wake()
            await self._pause(seconds)
            return
        if self._wake is not None and (self._wake.done() or self._wake_from != self._led):
            self._cancel_wake()
        if self._wake is None:
            self._wake_from = dict(self._led)
            self._wake = asyncio.ensure_future(
                self.store.schedules.wait_for_schedule_changes(self._wake_from, BLOCK_MS)
            )
        waits: set[asyncio.Future[Any]] = {self._wake}
        if self.closed is not None:
            waits.add(closing := asyncio.ensure_future(self.closed.wait()))
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        if self.closed is not None:
            closing.cancel()

    def _closing(self) -> bool:
        return self.closed is not None and self.closed.is_set()

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or until the scheduler is closed."""
        if self.closed is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.closed.wait()

    def _cancel_wake(self) -> None:
        wake, self._wake = self._wake, None
        if wake is None:
            return
        if not wake.done():
            wake.cancel()
            wake.add_done_callback(_consume)  # a client library may finish it regardless
        elif not wake.cancelled() and wake.exception() is not None:
            self.log.debug("waiting for schedule changes failed", error=repr(wake.exception()))

    async def _release(self) -> None:
        """Hand the leases over at once (a stopping worker should not make others wait)."""
        for queue in list(self._led):
            with contextlib.suppress(Exception):
                async with asyncio.timeout(RELEASE_TIMEOUT):
                    await self.store.schedules.scheduler_lease(
                        queue, self.holder, self.lease_ms, release=True
                    )
        self._led = {}


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned future's outcome, so that it is not reported as unretrieved."""
    if not future.cancelled():
        future.exception()
