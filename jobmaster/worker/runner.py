"""The worker: wires its parts and owns their lifecycle.

Each part is a class of its own, given what it needs: the fetcher claims into free slots,
the executors run attempts, the completion writer records how they ended, the lease keeper
renews leases from its own thread, and the reclaimer, promoter, control listener, remote
control (commands to this worker), watchdog and heartbeat (with telemetry) run as background
loops. They share the table of running attempts
(:class:`jobmaster.worker.running.RunningAttempts`). Every loop is started in
:meth:`Worker.run`, and stopped there in order: drain, hand back, flush the completions,
then stop the lease keeper.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import time
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any

import structlog

from jobmaster.definition import QUEUE_PATTERN
from jobmaster.errors import ConfigError
from jobmaster.event_loop import loop_name
from jobmaster.ops.deliveries import Notifier, new_notifier
from jobmaster.ops.middleware import Hooks
from jobmaster.ops.recorder import worker_recorder
from jobmaster.registry import Registry
from jobmaster.store import Store
from jobmaster.worker.completions import CompletionWriter
from jobmaster.worker.control import ControlListener
from jobmaster.worker.executors import Executors
from jobmaster.worker.fetcher import Fetcher
from jobmaster.worker.heartbeat import Heartbeat
from jobmaster.worker.held_leases import HeldLeases, new_lease_keeper
from jobmaster.worker.parent import watch_parent
from jobmaster.worker.promoter import Promoter
from jobmaster.worker.reclaimer import Reclaimer
from jobmaster.worker.recycling import Recycling
from jobmaster.worker.relayer import Relayer, deliver_outboxes
from jobmaster.worker.remote_control import RemoteControl
from jobmaster.worker.resources import WorkerResources
from jobmaster.worker.running import RunningAttempts
from jobmaster.worker.startup import start_up
from jobmaster.worker.telemetry import TelemetrySampler
from jobmaster.worker.watchdog import watch_idle_attempts

UPKEEP_STOP_SECONDS = 5.0
"""Longest wait for the background loops to stop at shutdown."""


def _check_settings(
    concurrency: int, grace: float, queues: list[str], lease: float, heartbeat: float
) -> None:
    """Raise ConfigError for settings a worker cannot run with."""
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    if grace < 0:
        raise ConfigError(f"grace must be >= 0 seconds, got {grace}")
    if not queues:
        raise ConfigError("the registry defines no jobs and no queues were given")
    bad = [q for q in queues if not re.fullmatch(QUEUE_PATTERN, q)]
    if bad:
        raise ConfigError(f"invalid queue name(s): {', '.join(map(repr, bad))}")
    if lease <= 0:
        raise ConfigError(f"lease must be > 0 seconds, got {lease}")
    if not 0 < heartbeat < lease:
        raise ConfigError(
            f"heartbeat ({heartbeat:g}s) must be > 0 and shorter than the lease ({lease:g}s)"
        )


class Worker:
    """Runs a registry's jobs from its queues.

    Args:
        registry: the jobs this worker can run and where their data lives.
        queues: queues to consume, in priority order (default: every queue the registry's
            jobs use).
        concurrency: attempts run at once (async in the loop, sync in threads).
        burst: stop once nothing is queued, due or running.
        burst_scheduled: in burst mode, also wait for scheduled jobs (delays, retries).
        lease: seconds a job is held between renewals (default: the registry's setting).
        heartbeat: seconds between lease renewals and worker heartbeats (default: the
            registry's setting, else lease / 3).
        grace: seconds running attempts get to finish at shutdown before they are
            cancelled and handed back.
        install_signal_handlers: stop on SIGTERM/SIGINT (a second signal: stop now).
        supervisor: pid of the process that supervises this one: when it dies, stop as on
            SIGTERM (``jobmaster worker --processes N`` sets it in its children).
        max_jobs: recycle the worker after it started this many jobs: take no more, finish
            those that run, and return from :meth:`run` with :attr:`recycled` set.
        max_memory: recycle the worker once its resident memory passes this many bytes.
        resources: what it offers jobs that declare ``resources=`` (``"gpu=2,mem=64G"``).
    """

    def __init__(
        self,
        registry: Registry,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int = 100,
        burst: bool = False,
        burst_scheduled: bool = False,
        lease: float | None = None,
        heartbeat: float | None = None,
        grace: float = 30.0,
        install_signal_handlers: bool = True,
        echo_job_logs: bool = True,
        supervisor: int | None = None,
        max_jobs: int | None = None,
        max_memory: int | None = None,
        resources: Mapping[str, Any] | str | None = None,
    ) -> None:
        self.registry = registry
        self.resources = _worker_resources(registry, resources)
        self.queues = list(queues) if queues else registry.queues()
        self.concurrency = concurrency
        self.burst = burst
        self.burst_scheduled = burst_scheduled
        self.lease = registry.settings.lease if lease is None else lease
        if heartbeat is None:
            heartbeat = registry.settings.heartbeat or self.lease / 3
        self.heartbeat = heartbeat
        _check_settings(concurrency, grace, self.queues, self.lease, self.heartbeat)
        self.grace = grace
        self.install_signal_handlers = install_signal_handlers
        self.supervisor = supervisor
        self._recycling = (
            Recycling(max_jobs, max_memory)
            if max_jobs is not None or max_memory is not None
            else None
        )
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.id = f"{self.hostname}-{self.pid}-{uuid.uuid4().hex[:8]}"
        self.started_at = time.time()
        self.log = structlog.get_logger("jobmaster.worker").bind(worker=self.id)
        self._echo = self._echo_line if echo_job_logs else None
        self._running = RunningAttempts(self.log)
        self._store: Store | None = None
        self._writer: CompletionWriter | None = None
        self._fetcher: Fetcher | None = None
        self._promoter: Promoter | None = None
        self._remote: RemoteControl | None = None
        self._resumed = asyncio.Event()  # one of the worker's paused queues was resumed
        self._lease_ms = int(self.lease * 1000)
        self._retention_ms = int(registry.settings.retention * 1000)
        self._stopping = asyncio.Event()  # set by stop(): take no more jobs
        self._hurry = asyncio.Event()  # set by a second signal: hand back what runs now
        self._closed = asyncio.Event()  # fetching and draining are over: the loops end
        self._flush_task: asyncio.Task[None] | None = None
        self._fetch_task: asyncio.Task[None] | None = None
        self._notifier: Notifier | None = None
        self._hooks: Hooks | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the worker is not running")
        return self._store

    @property
    def jobs_done(self) -> int:
        """Attempt ends this worker recorded."""
        return 0 if self._writer is None else self._writer.jobs_done

    @property
    def recycled(self) -> bool:
        """Whether the worker stopped because it reached max_jobs or max_memory."""
        return self._fetcher is not None and self._fetcher.recycled

    @property
    def retired(self) -> bool:
        """Whether the worker stopped because it was drained or stopped remotely."""
        return self._remote is not None and self._remote.state == "draining"

    async def run(self) -> None:
        """Run until stopped (or, in burst mode, until there is nothing left to do)."""
        self.registry.check_config()
        store = self._store = self.registry.new_store()
        running, log, closed = self._running, self.log, self._closed
        notifier = self._notifier = new_notifier(self.registry, store, self.queues, log, closed)
        hooks = self._hooks = self.registry.hooks
        writer = CompletionWriter(
            store, running, retention_ms=self._retention_ms, log=log, closed=closed, hooks=hooks,
            outbox=notifier,
        )  # fmt: skip
        self._writer = writer
        loop = asyncio.get_running_loop()
        writer.recorder = worker_recorder(self.registry.hooks, running, writer.held, loop)
        executors = Executors(
            self.registry,
            store,
            running,
            writer,
            worker_id=self.id,
            concurrency=self.concurrency,
            echo=self._echo,
            log=log,
            closed=closed,
            hooks=hooks,
            recorder=writer.recorder,
        )
        if self.install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_signal, sig)
        upkeep: list[asyncio.Future[Any]] = []
        keeper = new_lease_keeper(
            self.registry,
            store,
            HeldLeases(running, writer),
            running,
            interval=self.heartbeat,
            lease=self.lease,
            loop=loop,
            log=log,
        )
        if self.supervisor is not None:
            watch = watch_parent(self.supervisor, self._orphaned)
            upkeep.append(loop.create_task(watch, name="jobmaster-parent-watch"))
        started = False
        try:
            positions = await start_up(
                store,
                self.queues,
                redis_url=self.registry.settings.redis_url,
                stopping=self._stopping,
                log=log,
            )
            if positions is None:
                return
            started = True
            keeper.start()
            upkeep += self._start_upkeep(store, writer, positions, loop)
            log.info(
                "worker started",
                queues=self.queues,
                concurrency=self.concurrency,
                burst=self.burst,
                loop=loop_name(loop),
            )
            self._fetcher = Fetcher(
                store,
                running,
                writer,
                executors.start,
                queues=self.queues,
                worker_id=self.id,
                hostname=self.hostname,
                pid=self.pid,
                concurrency=self.concurrency,
                lease_ms=self._lease_ms,
                burst=self.burst,
                burst_scheduled=self.burst_scheduled,
                recycling=self._recycling,
                stopping=self._stopping,
                log=log,
                control=self._remote,
                resumed=self._resumed,
                resources=self.resources,
            )
            self._fetch_task = loop.create_task(self._fetcher.run(), name="jobmaster-fetch")
            with contextlib.suppress(asyncio.CancelledError):
                await self._fetch_task
            await executors.drain(self.grace, self._hurry)
        finally:
            await self._stop_upkeep(upkeep, writer)
            if started:  # before that, nothing of this worker is in Redis
                await writer.flush_until_empty()
                with contextlib.suppress(Exception):
                    await deliver_outboxes(store, self.queues, self._retention_ms)
                    await store.workers.remove_worker(self.id)
                    await store.fleet.forget_worker_commands(self.id)
                    for queue in self.queues:
                        await store.jobs.forget_consumer(queue, self.id)
            await asyncio.to_thread(keeper.stop)  # the leases of what was flushed are done
            if self.install_signal_handlers:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
            executors.shutdown()
            await store.close()
            log.info("worker stopped", jobs_done=self.jobs_done)

    def _start_upkeep(
        self,
        store: Store,
        writer: CompletionWriter,
        positions: dict[str, bytes],
        loop: asyncio.AbstractEventLoop,
    ) -> list[asyncio.Future[Any]]:
        """Start the background loops besides fetching (the lease keeper has its thread)."""
        running, log, closed = self._running, self.log, self._closed
        heartbeat, remote = _heartbeat_and_remote(self, store, writer)
        self._remote = remote
        reclaimer = Reclaimer(
            store, self.queues, max_lost=self.registry.settings.max_lost, lease_ms=self._lease_ms,
            retention_ms=self._retention_ms, log=log, closed=closed, hooks=self._hooks,
        )  # fmt: skip
        relayer = Relayer(store, self.queues, self._retention_ms, log=log, closed=closed)
        control = ControlListener(
            store, running, positions, log=log, closed=closed, resumed=self._resumed
        )
        watchdog = watch_idle_attempts(running, log=log, closed=closed)
        self._flush_task = loop.create_task(writer.run(), name="jobmaster-flush")
        tasks: list[asyncio.Future[Any]] = [
            self._flush_task,
            loop.create_task(heartbeat.run(), name="jobmaster-heartbeat"),
            loop.create_task(reclaimer.run(), name="jobmaster-reclaim"),
            loop.create_task(watchdog, name="jobmaster-watchdog"),
            loop.create_task(control.run(), name="jobmaster-control"),
            loop.create_task(remote.run(), name="jobmaster-remote-control"),
            loop.create_task(relayer.run(), name="jobmaster-relay"),
        ]
        if self._notifier is not None:
            tasks.append(loop.create_task(self._notifier.run(), name="jobmaster-webhooks"))
        if not self.burst:
            self._promoter = Promoter(store, self.queues, log=log, closed=closed)
            tasks.append(loop.create_task(self._promoter.run(), name="jobmaster-promote"))
            tasks.append(loop.create_task(_run_schedules(self, store), name="jobmaster-scheduler"))
        return tasks

    async def _stop_upkeep(
        self, upkeep: list[asyncio.Future[Any]], writer: CompletionWriter
    ) -> None:
        """Stop the background loops: the completion writer on the closed event (after its
        current batch), the others by cancellation, waiting a bounded time (a cancellation
        swallowed by a client library must not keep the process alive)."""
        self._closed.set()
        writer.wake()
        if self._promoter is not None and self._promoter.pending_read is not None:
            upkeep.append(self._promoter.pending_read)
        for task in upkeep:
            if task is not self._flush_task:
                task.cancel()
        if upkeep:
            _, pending = await asyncio.wait(upkeep, timeout=UPKEEP_STOP_SECONDS)
            if pending:
                names = sorted(t.get_name() for t in pending if isinstance(t, asyncio.Task))
                self.log.warning("background tasks did not stop in time", tasks=names)

    def stop(self) -> None:
        """Stop fetching; running attempts get the grace period to finish."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._running.slot_freed.set()
        if self._writer is not None:  # a burst worker may be waiting for ends to be written
            self._writer.recorded.set()

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stopping.is_set():
            self.log.warning("second signal: handing back running jobs now", signal=sig.name)
            self._hurry.set()
            return
        self.log.info("signal received: finishing running jobs", signal=sig.name, grace=self.grace)
        self.stop()

    def _orphaned(self) -> None:
        if not self._stopping.is_set():
            self.log.warning("supervisor died: finishing running jobs", grace=self.grace)
        self.stop()

    def _echo_line(self, level: str, event: str, fields: dict[str, Any]) -> None:
        method = getattr(self.log, level, self.log.info)
        method(event, **fields)


def _run_schedules(worker: Worker, store: Store) -> Coroutine[Any, Any, None]:
    """The scheduler's loop. Imported here: a burst worker runs no schedules, and needs
    none of their modules."""
    from jobmaster.scheduler import Scheduler

    scheduler = Scheduler(
        worker.registry, store, worker.queues, worker.id, log=worker.log, closed=worker._closed
    )
    return scheduler.run()


def _heartbeat_and_remote(
    worker: Worker, store: Store, writer: CompletionWriter
) -> tuple[Heartbeat, RemoteControl]:
    """The heartbeat (with telemetry and the worker's state) and the remote control, which
    lists the worker again with each command it applies."""
    heartbeat = Heartbeat(
        store,
        worker._running,
        lambda: writer.jobs_done,
        worker_id=worker.id,
        hostname=worker.hostname,
        pid=worker.pid,
        queues=worker.queues,
        concurrency=worker.concurrency,
        started_at=worker.started_at,
        lease=worker.lease,
        interval=worker.heartbeat,
        log=worker.log,
        closed=worker._closed,
        state=lambda: remote.state,
        telemetry=TelemetrySampler(),
        resources=worker.resources.capacity if worker.resources is not None else None,
    )
    remote = RemoteControl(
        store,
        worker._running,
        worker_id=worker.id,
        drain=worker.stop,
        stop=lambda: worker._on_signal(signal.SIGTERM),
        beat=heartbeat.beat,
        log=worker.log,
        closed=worker._closed,
    )
    return heartbeat, remote


def _worker_resources(
    registry: Registry, resources: Mapping[str, Any] | str | None
) -> WorkerResources | None:
    def needs_of(name: str) -> dict[str, float]:
        handler = registry.jobs.get(name)
        return dict(handler.controls.resources) if handler is not None else {}

    try:
        return WorkerResources.of(resources, needs_of)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
