"""Registry: the application's job definitions and its Redis settings.

A facade over parts of its own: its connections (:mod:`jobmaster.connections`), the checks of
declared jobs (:mod:`jobmaster.declarations`), the reads of its inspection methods
(:mod:`jobmaster.queries`), its schedules (:mod:`jobmaster.schedule_operations`) and the
remote control of workers (:mod:`jobmaster.fleet`, whose methods it inherits). The
modules below it type their back-reference with :class:`jobmaster.registry_view.RegistryView`
and never import this one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from redis.asyncio import Redis

from jobmaster.connections import Connection, Connections
from jobmaster.declarations import (
    JobDecorator,
    check_configured_names,
    check_cron_job,
    job_definition,
)
from jobmaster.errors import (
    UnknownJob,
)
from jobmaster.fleet import WorkerControl
from jobmaster.handle import JobHandle
from jobmaster.handler import JobHandler, split_arguments
from jobmaster.job_logs import JobLogs
from jobmaster.job_relations import Relations
from jobmaster.models import (
    Job,
    JobEvent,
    JobState,
    JobSummary,
    QueueStats,
    Schedule,
    WorkerInfo,
)
from jobmaster.ops.middleware import Hooks, Middleware, check_middleware
from jobmaster.overrides import JobConfig
from jobmaster.queries import Queries
from jobmaster.queue_control import QueueControl
from jobmaster.schedule_operations import ScheduleOperations
from jobmaster.settings import Settings
from jobmaster.store import Store
from jobmaster.store.blocking import BlockingProducer

if TYPE_CHECKING:
    # imported where used: an application without schedules does not load them (nor cron)
    from jobmaster.schedule_definition import ScheduleDefinition

T = TypeVar("T")


class Registry(WorkerControl, QueueControl, JobLogs, Relations):
    """The set of jobs of an application and where their data lives.

    Args:
        redis_url: the Redis to use (default: ``$JOBMASTER_REDIS_URL``, else localhost).
        namespace: prefix of every key, so that several apps can share one Redis.
        retention: seconds finished jobs and their attempts are kept (default 7 days).
        lease: seconds a worker holds a job between renewals (default 30).
        heartbeat: seconds between lease renewals and worker heartbeats (default lease/3).
        max_lost: lost attempts after which a job ends failed (default 3).
        events_maxlen: entries kept in each queue's events stream (default 10,000).
        log_bytes: bytes of log lines kept per attempt (default 256 KiB).
        max_payload: most bytes a job's arguments may take, packed (default 2 MiB); a
            larger call raises InvalidArguments.
        scheduler_lease: seconds a worker's scheduler leads a queue's schedules (default 5).
        reply_spin: seconds ``enqueue*_sync`` polls for a reply before it sleeps (0.0001).
        min_replicas_acked: replicas that must acknowledge each write (WAIT; default 0).
        config_dir: where to look for pyproject.toml / jobmaster.toml job overrides
            (default: the working directory and its parents).
        environ: the environment to read JOBMASTER_* variables from (default: os.environ).
    """

    def __init__(
        self, redis_url: str | None = None, *, namespace: str | None = None,
        retention: float | None = None, lease: float | None = None,
        heartbeat: float | None = None, max_lost: int | None = None,
        events_maxlen: int | None = None, log_bytes: int | None = None,
        max_payload: int | None = None, scheduler_lease: float | None = None,
        reply_spin: float | None = None, min_replicas_acked: int | None = None,
        config_dir: str | Path | None = None, environ: Mapping[str, str] | None = None,
    ) -> None:  # fmt: skip
        self.settings = Settings.load(
            environ, redis_url=redis_url, namespace=namespace, retention=retention, lease=lease,
            heartbeat=heartbeat, max_lost=max_lost, events_maxlen=events_maxlen,
            log_bytes=log_bytes, max_payload=max_payload, scheduler_lease=scheduler_lease,
            reply_spin=reply_spin, min_replicas_acked=min_replicas_acked,
        )  # fmt: skip
        self.job_config = JobConfig.discover(
            Path(config_dir) if config_dir is not None else None, environ
        )
        self.jobs: dict[str, JobHandler[Any, Any]] = {}
        self.hooks: Hooks | None = None  # the middleware's, None while there is none
        self._connections = Connections(self.settings)
        self._queries = Queries(self)
        self._schedules = ScheduleOperations(self)
        self.declared_schedules: dict[str, ScheduleDefinition] = self._schedules.declared
        """Schedules declared in code, synced to Redis when a worker starts."""

    def __repr__(self) -> str:
        return f"<Registry {self.settings.namespace!r} jobs={sorted(self.jobs)}>"

    @property
    def redis_factory(self) -> Callable[[], Redis]:
        """Makes a Redis client for each event loop and worker (replaceable in tests)."""
        return self._connections.redis_factory

    @redis_factory.setter
    def redis_factory(self, factory: Callable[[], Redis]) -> None:
        self._connections.redis_factory = factory

    # -- declaring jobs -----------------------------------------------------------------------

    def job(self, _fn: Any = None, /, **options: Any) -> JobDecorator:
        """Declare a job handler: ``@registry.job(queue=..., timeout=..., retry=Retry(...))``.

        Options: name (default: the function's name), queue, priority (0..9), timeout
        (seconds), retry (a :class:`Retry`), result_ttl (seconds). Configuration files and
        JOBMASTER_JOBS__* variables override them (see :mod:`jobmaster.overrides`).
        cron: a cron expression (UTC) that runs the job, for jobs without required
        arguments; a schedule named after the job (see :meth:`schedule` for more).
        """
        if _fn is not None:
            raise TypeError("use @registry.job() with parentheses, options as keywords")
        return JobDecorator(self._register, options)

    def _register(self, fn: Callable[..., Any], options: dict[str, Any]) -> JobHandler[Any, Any]:
        definition = job_definition(fn, options, self.jobs, self.job_config)
        handler: JobHandler[Any, Any] = JobHandler(self, fn, definition)
        if options.get("cron") is not None:
            check_cron_job(handler)
            self.schedule(handler.name, handler, cron=options["cron"])
        self.jobs[handler.name] = handler
        return handler

    def get(self, name: str) -> JobHandler[Any, Any]:
        """The handler registered under ``name``."""
        try:
            return self.jobs[name]
        except KeyError:
            known = ", ".join(sorted(self.jobs)) or "(none)"
            raise UnknownJob(f"no job named {name!r}; registered jobs: {known}") from None

    def queues(self) -> list[str]:
        """The queues this registry's jobs go to by default, in a stable order."""
        return sorted({h.definition.queue for h in self.jobs.values()})

    def check_config(self) -> None:
        """Fail if a file or JOBMASTER_JOBS__ variable configures a job not defined here."""
        check_configured_names(self.job_config, self.jobs)

    def use(self, middleware: Middleware) -> None:
        """Add a :class:`Middleware` (its hooks run after those added before it)."""
        added = self.hooks.middleware if self.hooks is not None else ()
        self.hooks = Hooks([*added, check_middleware(middleware)])

    # -- schedules ------------------------------------------------------------------------------

    def schedule(
        self, name: str, job: str | JobHandler[Any, Any], *, cron: str | None = None,
        every: float | timedelta | None = None,
        args: Mapping[str, Any] | Sequence[Any] | None = None, tz: str = "UTC",
        catch_up: str = "latest", catch_up_limit: int = 100, queue: str | None = None,
    ) -> ScheduleDefinition:  # fmt: skip
        """Declare a schedule in code; workers sync it to Redis when they start.

        Args:
            name: the schedule's name (letters, digits and ``_.:-``), unique in the namespace.
            job: the job (its handler, or its name; declared before the schedule).
            cron: a cron expression: 5 fields, or 6 with seconds last (croniter's order).
            every: or an interval in seconds (>= 1), ticking on multiples of it since the
                Unix epoch.
            args: the job's fixed arguments: a mapping of keywords or a list of positionals.
            tz: the IANA timezone the cron expression is read in (DST as croniter does).
            catch_up: for ticks that fell due while no scheduler ran: "skip" them, run the
                "latest" one, or run "all" of them (the most recent ``catch_up_limit``).
            queue: another queue than the job's.

        Raises:
            ConfigError: a bad name, expression, timezone, interval or policy, or a name
                declared twice.
            InvalidArguments: ``args`` do not fit the job's signature.
        """
        return self._schedules.declare(name, job, cron=cron, every=every, args=args, tz=tz,
            catch_up=catch_up, catch_up_limit=catch_up_limit, queue=queue)  # fmt: skip

    async def schedules(self) -> list[Schedule]:
        """Every schedule in Redis, by name, with its next run and its last job."""
        return await self._schedules.run("listing schedules", lambda book: book.list())

    async def get_schedule(self, name: str) -> Schedule:
        """One schedule; :class:`ScheduleNotFound` if there is none by that name."""
        return await self._schedules.run(f"reading schedule {name}", lambda b: b.get(name))

    async def add_schedule(
        self, name: str, job: str | JobHandler[Any, Any], *, cron: str | None = None,
        every: float | timedelta | None = None,
        args: Mapping[str, Any] | Sequence[Any] | None = None, tz: str = "UTC",
        catch_up: str = "latest", catch_up_limit: int = 100, queue: str | None = None,
    ) -> Schedule:  # fmt: skip
        """Create a schedule at run time (workers pick it up without a restart).

        Takes the arguments of :meth:`schedule`. Raises :class:`ScheduleExists` if the
        name is taken.
        """
        return await self._schedules.add(name, job, cron=cron, every=every, args=args, tz=tz,
            catch_up=catch_up, catch_up_limit=catch_up_limit, queue=queue)  # fmt: skip

    async def update_schedule(
        self, name: str, *, job: str | JobHandler[Any, Any] | None = None,
        cron: str | None = None, every: float | timedelta | None = None,
        args: Mapping[str, Any] | Sequence[Any] | None = None, tz: str | None = None,
        catch_up: str | None = None, catch_up_limit: int | None = None,
    ) -> Schedule:  # fmt: skip
        """Change a schedule; what is not given stays. ``cron=`` replaces an interval and
        ``every=`` a cron expression. The next tick moves only when the timing changes.
        A code-declared schedule returns to its code's definition when a worker starts."""
        return await self._schedules.run(f"updating schedule {name}", lambda book: book.update(
            name, job=job, cron=cron, every=every, args=args, tz=tz, catch_up=catch_up,
            catch_up_limit=catch_up_limit))  # fmt: skip

    async def pause_schedule(self, name: str) -> Schedule:
        """Stop a schedule's ticks until :meth:`resume_schedule`."""
        return await self._schedules.run(f"pausing schedule {name}", lambda b: b.pause(name))

    async def resume_schedule(self, name: str) -> Schedule:
        """Resume a paused schedule from its next tick (ticks missed meanwhile are not run)."""
        return await self._schedules.run(f"resuming schedule {name}", lambda b: b.resume(name))

    async def trigger_schedule(self, name: str) -> JobHandle[Any]:
        """Run a schedule's job now, as a normal job; the next tick does not move."""
        return await self._schedules.run(f"running schedule {name}", lambda b: b.trigger(name))

    async def delete_schedule(self, name: str) -> None:
        """Delete a schedule (its jobs are left alone). A code-declared one comes back when
        a worker starts, unless it was removed from the code."""
        await self._schedules.run(f"deleting schedule {name}", lambda b: b.delete(name))

    # -- connections ----------------------------------------------------------------------------

    def new_store(self) -> Store:
        """A store on a new Redis client (the caller closes it)."""
        return self._connections.new_store()

    def uses_default_client(self) -> bool:
        """Whether jobmaster makes its Redis clients itself (not a replaced redis_factory)."""
        return self._connections.uses_default_client()

    def blocking_producer(self) -> BlockingProducer | None:
        """The producer of ``enqueue*_sync`` (None: they use run_sync, e.g. over TLS)."""
        return self._connections.blocking or self._connections.open_blocking_producer()

    def connection(self) -> Connection:
        """The store and waiter of the running event loop (created on first use)."""
        connections = self._connections
        return connections.per_loop.get(asyncio.get_running_loop()) or connections.open()

    def run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine of this registry from synchronous code."""
        return self._connections.run_sync(coro)

    async def aclose(self) -> None:
        """Close this event loop's connections (and the synchronous runner's, if any)."""
        await self._connections.aclose()

    def close(self) -> None:
        """Close the connections opened by the ``*_sync`` methods."""
        self._connections.close()

    async def __aenter__(self) -> Registry:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- producing and inspecting by name -------------------------------------------------------

    async def enqueue(
        self,
        name: str,
        arguments: Mapping[str, Any] | Sequence[Any] | None = None,
        **options: Any,
    ) -> JobHandle[Any]:
        """Enqueue a job by name: ``await registry.enqueue("add", {"a": 1, "b": 2})``.

        ``arguments`` is a mapping of keyword arguments or a sequence of positional ones;
        ``options`` are those of :meth:`JobHandler.options`.
        """
        handler_options = self.get(name).options(**options)
        args, kwargs = split_arguments(arguments)
        return await handler_options.enqueue(*args, **kwargs)

    def handle(self, job_id: str, queue: str) -> JobHandle[Any]:
        """A handle to an existing job whose queue is known."""
        return JobHandle(self, job_id, queue)

    async def find(self, job_id: str, queue: str | None = None) -> JobHandle[Any]:
        """A handle to an existing job, looked up by id across every queue (or in one)."""
        return await self._queries.find(job_id, queue)

    async def get_job(self, job_id: str, queue: str | None = None) -> Job:
        """A job with its state and attempts, from any process, by id."""
        return await (await self.find(job_id, queue)).info()

    async def known_queues(self) -> list[str]:
        """Every queue that has had a job in this namespace."""
        return await self._queries.known_queues()

    async def list_jobs(
        self, queue: str, state: JobState, *, offset: int = 0, limit: int = 50,
        name: str | None = None, tag: str | None = None, scan_limit: int = 10_000,
    ) -> list[JobSummary]:  # fmt: skip
        """A page of a queue's jobs in one state, newest first (scheduled: soonest first).

        ``name`` and ``tag`` keep the jobs of that name or carrying that tag; they are
        looked for among the newest ``scan_limit`` jobs of the state.
        """
        return await self._queries.list_jobs(
            queue, state, offset=offset, limit=limit, name=name, tag=tag, scan_limit=scan_limit
        )

    async def delete_job(self, job_id: str, queue: str | None = None) -> None:
        """Delete a finished job with its attempts, logs and result: :class:`JobNotFound`
        if there is no such job, :class:`InvalidState` if it has not finished (cancel it
        first)."""
        await (await self.find(job_id, queue)).delete()

    async def queue_stats(
        self, queue: str, *, buckets: int = 60, bucket_seconds: int = 60
    ) -> QueueStats:
        """Counts per state, the oldest waiting job, and jobs finished per time bucket."""
        return await self._queries.queue_stats(queue, buckets, bucket_seconds)

    def events(
        self, queues: Sequence[str] | None = None, *, since: datetime | None = None
    ) -> AsyncIterator[JobEvent]:
        """Every state change of every job in ``queues`` (default: every queue, including
        queues that appear later) as it happens, from now on or from ``since`` (as far back
        as the capped events stream goes). An async generator holding one connection while
        it waits; ``aclose()`` it when done. Cancelling the task that iterates it stops it at
        once; an entry of the events stream that cannot be decoded is skipped (and logged),
        not the end of the feed."""
        return self._queries.events(queues, since)

    async def count_jobs(self, queue: str) -> dict[JobState, int]:
        """Jobs per state in a queue (one cheap count per state)."""
        return await self._queries.count_jobs(queue)

    async def workers(self) -> list[WorkerInfo]:
        """Live worker processes, from their heartbeats."""
        return await self._queries.workers()
