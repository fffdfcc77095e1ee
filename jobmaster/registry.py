"""Registry: the application's job definitions and its Redis settings."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, overload

from pydantic import ValidationError
from redis.asyncio import Redis

from jobmaster.context import Context
from jobmaster.definition import OPTIONS, JobDefinition, Retry
from jobmaster.errors import (
    ConfigError,
    InvalidArguments,
    JobmasterError,
    JobNotFound,
    UnknownJob,
    redis_errors,
)
from jobmaster.event_feed import abandoned_on_cancel, event_feed
from jobmaster.handle import JobHandle
from jobmaster.handler import JobHandler
from jobmaster.models import (
    Job,
    JobEvent,
    JobState,
    JobSummary,
    QueueStats,
    Schedule,
    WorkerInfo,
)
from jobmaster.overrides import JobConfig, env_name
from jobmaster.records import from_ms
from jobmaster.settings import JOBS_ENV_PREFIX, Settings, _explain
from jobmaster.store import Store
from jobmaster.store.blocking import BlockingProducer
from jobmaster.sync_runner import SyncRunner
from jobmaster.transport import clients
from jobmaster.transport.multiplexed import MultiplexedConnection
from jobmaster.waiting import JobWaiter

if TYPE_CHECKING:
    # imported where used: an application without schedules does not load them (nor cron)
    from jobmaster.schedules import ScheduleBook, ScheduleDefinition

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

_DECORATOR_OPTIONS = ("name", *OPTIONS, "retry", "cron")


@dataclass(frozen=True)
class Connection:
    """A store and a result waiter bound to one event loop."""

    store: Store
    waiter: JobWaiter


class _JobDecorator:
    def __init__(self, registry: Registry, options: dict[str, Any]) -> None:
        self._registry = registry
        self._options = options

    @overload
    def __call__(self, fn: Callable[Concatenate[Context, P], Awaitable[R]]) -> JobHandler[P, R]: ...
    @overload
    def __call__(self, fn: Callable[Concatenate[Context, P], R]) -> JobHandler[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]]) -> JobHandler[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> JobHandler[P, R]: ...
    def __call__(self, fn: Callable[..., Any]) -> JobHandler[Any, Any]:
        return self._registry._register(fn, self._options)


class Registry:
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
        reply_spin: seconds ``enqueue*_sync`` polls for Redis's reply before it sleeps
            (default 0.0001; 0 never polls).
        config_dir: where to look for pyproject.toml / jobmaster.toml job overrides
            (default: the working directory and its parents).
        environ: the environment to read JOBMASTER_* variables from (default: os.environ).
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        namespace: str | None = None,
        retention: float | None = None,
        lease: float | None = None,
        heartbeat: float | None = None,
        max_lost: int | None = None,
        events_maxlen: int | None = None,
        log_bytes: int | None = None,
        max_payload: int | None = None,
        scheduler_lease: float | None = None,
        reply_spin: float | None = None,
        config_dir: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = Settings.load(
            environ,
            redis_url=redis_url,
            namespace=namespace,
            retention=retention,
            lease=lease,
            heartbeat=heartbeat,
            max_lost=max_lost,
            events_maxlen=events_maxlen,
            log_bytes=log_bytes,
            max_payload=max_payload,
            scheduler_lease=scheduler_lease,
            reply_spin=reply_spin,
        )
        self.job_config = JobConfig.discover(
            Path(config_dir) if config_dir is not None else None, environ
        )
        self.jobs: dict[str, JobHandler[Any, Any]] = {}
        self.redis_factory: Callable[[], Redis] = self._connect
        """Makes a Redis client for each event loop and worker (replaceable in tests)."""
        self._connections: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Connection] = (
            weakref.WeakKeyDictionary()
        )
        self._sync: SyncRunner | None = None
        self._blocking: BlockingProducer | None = None
        self._sync_lock = threading.Lock()
        self.declared_schedules: dict[str, ScheduleDefinition] = {}
        """Schedules declared in code, synced to Redis when a worker starts."""

    def __repr__(self) -> str:
        return f"<Registry {self.settings.namespace!r} jobs={sorted(self.jobs)}>"

    # -- declaring jobs -----------------------------------------------------------------------

    def job(self, _fn: Any = None, /, **options: Any) -> _JobDecorator:
        """Declare a job handler: ``@registry.job(queue=..., timeout=..., retry=Retry(...))``.

        Options: name (default: the function's name), queue, priority (0..9), timeout
        (seconds), retry (a :class:`Retry`), result_ttl (seconds). Configuration files and
        JOBMASTER_JOBS__* variables override them (see :mod:`jobmaster.overrides`).
        cron: a cron expression (UTC) that runs the job, for jobs without required
        arguments; a schedule named after the job (see :meth:`schedule` for more).
        """
        if _fn is not None:
            raise TypeError("use @registry.job() with parentheses, options as keywords")
        unknown = sorted(set(options) - set(_DECORATOR_OPTIONS))
        if unknown:
            raise ConfigError(
                f"unknown job option(s) {', '.join(map(repr, unknown))}; "
                f"valid options: {', '.join(_DECORATOR_OPTIONS)}"
            )
        return _JobDecorator(self, options)

    def _register(self, fn: Callable[..., Any], options: dict[str, Any]) -> JobHandler[Any, Any]:
        if not callable(fn):
            raise TypeError(f"@registry.job() decorates a function, got {fn!r}")
        name = str(options.get("name") or getattr(fn, "__name__", ""))
        if name in self.jobs:
            raise ConfigError(
                f"a job named {name!r} is already registered; pass name= to tell them apart"
            )
        given = {k: v for k, v in options.items() if v is not None and k not in ("name", "cron")}
        retry = given.get("retry")
        if retry is not None and not isinstance(retry, Retry):
            raise ConfigError(f"retry= takes a jobmaster.Retry(...), got {retry!r}")
        try:
            definition = JobDefinition(name=name, **given)
        except ValidationError as exc:
            raise ConfigError(f"job {name!r}: {_explain(exc)}") from None
        definition = self.job_config.apply(definition)
        handler: JobHandler[Any, Any] = JobHandler(self, fn, definition)
        if options.get("cron") is not None:
            self._schedule_job(handler, options["cron"])
        self.jobs[definition.name] = handler
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
        """Fail if a configuration file or a JOBMASTER_JOBS__ variable configures a job this
        registry does not define (a misspelt name would otherwise be ignored)."""
        unknown = self.job_config.configured_names() - set(self.jobs)
        env_names = {env_name(name) for name in self.jobs}
        unknown |= {
            f"{JOBS_ENV_PREFIX}{name}__..."
            for name in self.job_config.configured_env_names() - env_names
        }
        if unknown:
            raise ConfigError(
                f"configuration names job(s) {', '.join(sorted(unknown))} that the registry "
                f"does not define; defined: {', '.join(sorted(self.jobs)) or '(none)'}"
            )

    # -- schedules ------------------------------------------------------------------------------

    def schedule(
        self,
        name: str,
        job: str | JobHandler[Any, Any],
        *,
        cron: str | None = None,
        every: float | timedelta | None = None,
        args: Mapping[str, Any] | Sequence[Any] | None = None,
        tz: str = "UTC",
        catch_up: str = "latest",
        catch_up_limit: int = 100,
        queue: str | None = None,
    ) -> ScheduleDefinition:
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
        from jobmaster.schedules import define

        if name in self.declared_schedules:
            raise ConfigError(f"a schedule named {name!r} is already declared")
        definition = define(
            self, name, job, cron=cron, every=every, args=args, tz=tz, catch_up=catch_up,
            catch_up_limit=catch_up_limit, queue=queue, source="code",
        )  # fmt: skip
        self.declared_schedules[name] = definition
        return definition

    def _schedule_job(self, handler: JobHandler[Any, Any], cron: str) -> None:
        """``@registry.job(cron=...)``: a schedule named after an argument-less job."""
        try:
            handler.signature.encode_call((), {})
        except InvalidArguments:
            raise ConfigError(
                f"job {handler.name!r}: cron= is for jobs without required arguments; use "
                f"registry.schedule(name, job, cron=..., args=...) to give them"
            ) from None
        self.schedule(handler.name, handler, cron=cron)

    def _schedules(self) -> ScheduleBook:
        from jobmaster.schedules import ScheduleBook

        return ScheduleBook(self, self.connection().store)

    async def schedules(self) -> list[Schedule]:
        """Every schedule in Redis, by name, with its next run and its last job."""
        with self._redis_errors("listing schedules"):
            return await self._schedules().list()

    async def get_schedule(self, name: str) -> Schedule:
        """One schedule; :class:`ScheduleNotFound` if there is none by that name."""
        with self._redis_errors(f"reading schedule {name}"):
            return await self._schedules().get(name)

    async def add_schedule(
        self,
        name: str,
        job: str | JobHandler[Any, Any],
        *,
        cron: str | None = None,
        every: float | timedelta | None = None,
        args: Mapping[str, Any] | Sequence[Any] | None = None,
        tz: str = "UTC",
        catch_up: str = "latest",
        catch_up_limit: int = 100,
        queue: str | None = None,
    ) -> Schedule:
        """Create a schedule at run time (workers pick it up without a restart).

        Takes the arguments of :meth:`schedule`. Raises :class:`ScheduleExists` if the
        name is taken.
        """
        from jobmaster.schedules import define

        definition = define(
            self, name, job, cron=cron, every=every, args=args, tz=tz, catch_up=catch_up,
            catch_up_limit=catch_up_limit, queue=queue, source="api",
        )  # fmt: skip
        with self._redis_errors(f"adding schedule {name}"):
            return await self._schedules().add(definition)

    async def update_schedule(
        self,
        name: str,
        *,
        job: str | JobHandler[Any, Any] | None = None,
        cron: str | None = None,
        every: float | timedelta | None = None,
        args: Mapping[str, Any] | Sequence[Any] | None = None,
        tz: str | None = None,
        catch_up: str | None = None,
        catch_up_limit: int | None = None,
    ) -> Schedule:
        """Change a schedule; what is not given stays. ``cron=`` replaces an interval and
        ``every=`` a cron expression. The next tick moves only when the timing changes.
        A code-declared schedule returns to its code's definition when a worker starts."""
        with self._redis_errors(f"updating schedule {name}"):
            return await self._schedules().update(
                name, job=job, cron=cron, every=every, args=args, tz=tz, catch_up=catch_up,
                catch_up_limit=catch_up_limit,
            )  # fmt: skip

    async def pause_schedule(self, name: str) -> Schedule:
        """Stop a schedule's ticks until :meth:`resume_schedule`."""
        with self._redis_errors(f"pausing schedule {name}"):
            return await self._schedules().pause(name)

    async def resume_schedule(self, name: str) -> Schedule:
        """Resume a paused schedule from its next tick; ticks that fell while it was paused
        are not run."""
        with self._redis_errors(f"resuming schedule {name}"):
            return await self._schedules().resume(name)

    async def trigger_schedule(self, name: str) -> JobHandle[Any]:
        """Run a schedule's job now, as a normal job; the next tick does not move."""
        with self._redis_errors(f"running schedule {name}"):
            return await self._schedules().trigger(name)

    async def delete_schedule(self, name: str) -> None:
        """Delete a schedule (its jobs are left alone). A code-declared one comes back when
        a worker starts, unless it was removed from the code."""
        with self._redis_errors(f"deleting schedule {name}"):
            await self._schedules().delete(name)

    # -- connections ----------------------------------------------------------------------------

    def _connect(self) -> Redis:
        return clients.async_client(self.settings.redis_url)

    def new_store(self) -> Store:
        """A store on a new Redis client (the caller closes it)."""
        settings = self.settings
        fast = reader = None
        if self._own_connections():

            def reader() -> MultiplexedConnection:
                return clients.fast_connection(settings.redis_url)

            fast = reader()
        return Store(
            self.redis_factory(),
            settings.namespace,
            events_maxlen=settings.events_maxlen,
            log_bytes=settings.log_bytes,
            fast=fast,
            blocking_reads=reader,
        )

    def uses_default_client(self) -> bool:
        """Whether jobmaster makes its Redis clients from ``redis_url`` itself (False when
        ``redis_factory`` was replaced, as :func:`jobmaster.testing.fake_registry` does)."""
        return self.redis_factory == self._connect

    def _own_connections(self) -> bool:
        """Whether jobmaster opens its connections itself (the fast paths need a plain
        ``redis://`` URL and the default client; a client of one's own is used as it is)."""
        return self.uses_default_client() and clients.supports(self.settings.redis_url)

    def blocking_producer(self) -> BlockingProducer | None:
        """The producer of the ``enqueue*_sync`` methods (None: they use :meth:`run_sync`,
        as with a TLS or socket URL, or a client of one's own)."""
        if self._blocking is None:
            if not self._own_connections():
                return None
            settings = self.settings
            with self._sync_lock:
                if self._blocking is None:
                    self._blocking = BlockingProducer(
                        settings.redis_url,
                        settings.namespace,
                        events_maxlen=settings.events_maxlen,
                        timeout=clients.SOCKET_TIMEOUT,
                        spin=settings.reply_spin,
                    )
        return self._blocking

    def connection(self) -> Connection:
        """The store and waiter of the running event loop (created on first use)."""
        loop = asyncio.get_running_loop()
        conn = self._connections.get(loop)
        if conn is None:
            store = self.new_store()
            conn = self._connections[loop] = Connection(store, JobWaiter(store))
        return conn

    def run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine of this registry from synchronous code."""
        with self._sync_lock:
            if self._sync is None:
                self._sync = SyncRunner()
        return self._sync.run(coro)

    async def aclose(self) -> None:
        """Close this event loop's connections (and the synchronous runner's, if any)."""
        conn = self._connections.pop(asyncio.get_running_loop(), None)
        if conn is not None:
            await conn.waiter.close()
            await conn.store.close()

    def close(self) -> None:
        """Close the connections opened by the ``*_sync`` methods."""
        with self._sync_lock:
            runner, self._sync = self._sync, None
            blocking, self._blocking = self._blocking, None
        if blocking is not None:
            blocking.close()
        if runner is not None:
            runner.run(self.aclose())
            runner.close()

    async def __aenter__(self) -> Registry:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
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
        handler = self.get(name)
        opts = handler.options(**options)
        if arguments is None:
            return await opts.enqueue()
        if isinstance(arguments, Mapping):
            return await opts.enqueue(**arguments)
        if isinstance(arguments, Sequence) and not isinstance(arguments, str | bytes):
            return await opts.enqueue(*arguments)
        raise InvalidArguments(
            f"arguments must be a mapping (keywords) or a list (positional), got {arguments!r}"
        )

    def handle(self, job_id: str, queue: str) -> JobHandle[Any]:
        """A handle to an existing job whose queue is known."""
        return JobHandle(self, job_id, queue)

    async def find(self, job_id: str, queue: str | None = None) -> JobHandle[Any]:
        """A handle to an existing job, looked up by id across every queue (or in one)."""
        store = self.connection().store
        with self._redis_errors(f"looking up job {job_id}"):
            queues = [queue] if queue is not None else await store.inspection.locate(job_id)
            if queue is not None and await store.inspection.state(queue, job_id) is None:
                queues = []
        if not queues:
            where = f" in queue {queue!r}" if queue is not None else ""
            raise JobNotFound(f"no job with id {job_id!r}{where}")
        if len(queues) > 1:
            raise JobmasterError(
                f"job id {job_id!r} exists in queues {', '.join(queues)}; pass queue= to choose"
            )
        return JobHandle(self, job_id, queues[0])

    async def get_job(self, job_id: str, queue: str | None = None) -> Job:
        """A job with its state and attempts, from any process, by id."""
        return await (await self.find(job_id, queue)).info()

    async def known_queues(self) -> list[str]:
        """Every queue that has had a job in this namespace."""
        with self._redis_errors("listing queues"):
            return await self.connection().store.inspection.queues()

    async def list_jobs(
        self,
        queue: str,
        state: JobState,
        *,
        offset: int = 0,
        limit: int = 50,
        name: str | None = None,
        tag: str | None = None,
        scan_limit: int = 10_000,
    ) -> list[JobSummary]:
        """A page of a queue's jobs in one state, newest first (scheduled: soonest first).

        ``name`` and ``tag`` keep the jobs of that name or carrying that tag; they are
        looked for among the newest ``scan_limit`` jobs of the state.
        """
        if limit < 1 or offset < 0 or scan_limit < 1:
            raise ValueError("limit and scan_limit must be >= 1 and offset >= 0")
        with self._redis_errors(f"listing jobs of {queue}"):
            return await self.connection().store.inspection.list_jobs(
                queue,
                JobState(state),
                offset=offset,
                limit=limit,
                name=name,
                tag=tag,
                scan_limit=scan_limit,
            )

    async def delete_job(self, job_id: str, queue: str | None = None) -> None:
        """Delete a finished job with its attempts, logs and result.

        Raises:
            JobNotFound: there is no such job.
            InvalidState: the job has not finished (cancel it first).
        """
        await (await self.find(job_id, queue)).delete()

    async def queue_stats(
        self, queue: str, *, buckets: int = 60, bucket_seconds: int = 60
    ) -> QueueStats:
        """Counts per state, the oldest waiting job, and jobs finished per time bucket."""
        if not 1 <= buckets <= 1440 or bucket_seconds < 1:
            raise ValueError("buckets must be 1..1440 and bucket_seconds >= 1")
        bucket_ms = bucket_seconds * 1000
        with self._redis_errors(f"reading statistics of {queue}"):
            (
                counts,
                oldest_ms,
                now_ms,
                done,
                failed,
            ) = await self.connection().store.inspection.stats(queue, buckets, bucket_ms)
        first = now_ms - buckets * bucket_ms
        return QueueStats(
            queue=queue,
            counts=counts,
            oldest_waiting_at=from_ms(oldest_ms) if oldest_ms is not None else None,
            bucket_seconds=bucket_seconds,
            bucket_starts=[from_ms(first + b * bucket_ms) for b in range(buckets)],
            succeeded=done,
            failed=failed,
        )

    async def events(
        self, queues: Sequence[str] | None = None, *, since: datetime | None = None
    ) -> AsyncIterator[JobEvent]:
        """Every state change of every job in ``queues`` (default: every queue, including
        queues that appear later) as it happens, from now on or from ``since`` (as far back
        as the capped events stream goes).

        An async generator holding one connection while it waits; ``aclose()`` it when done.
        Cancelling the task that iterates it stops it at once; an entry of the events
        stream that cannot be decoded is skipped (and logged), not the end of the feed.
        """
        store = self.connection().store
        if since is None:
            with self._redis_errors("reading events"):
                seconds, micros = await abandoned_on_cancel(store.redis.time())
            start_ms = int(seconds) * 1000 + int(micros) // 1000
        else:
            if since.tzinfo is None:
                raise ValueError("since= must be timezone-aware")
            start_ms = int(since.timestamp() * 1000)
        feed = event_feed(
            store, queues, f"{start_ms}-0".encode(), lambda: self._redis_errors("reading events")
        )
        try:
            async for event in feed:
                yield event
        finally:
            await feed.aclose()

    async def count_jobs(self, queue: str) -> dict[JobState, int]:
        """Jobs per state in a queue (one cheap count per state)."""
        with self._redis_errors(f"counting jobs of {queue}"):
            return await self.connection().store.inspection.counts(queue)

    async def workers(self) -> list[WorkerInfo]:
        """Live worker processes, from their heartbeats."""
        with self._redis_errors("listing workers"):
            return await self.connection().store.workers.workers()

    def _redis_errors(self, what: str) -> AbstractContextManager[None]:
        """:class:`RedisUnavailable` instead of the client's own connection errors."""
        return redis_errors(what, self.settings.redis_url)
