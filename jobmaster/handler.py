"""JobHandler: what ``@registry.job`` returns; enqueues calls checked against the handler."""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from jobmaster.definition import JobDefinition
from jobmaster.errors import (
    ConfigError,
    InvalidArguments,
    NotReplicated,
    RedisFull,
    full,
    redis_errors,
)
from jobmaster.flow import Call, Dependency, FlowJob, dependencies, new_id
from jobmaster.handle import JobHandle
from jobmaster.ops.middleware import EnqueueRequest
from jobmaster.options import check_job_id, check_priority, check_queue, check_tags, delay_to_ms
from jobmaster.payload import pack_arguments, pack_many_arguments
from jobmaster.records import RecordPacker
from jobmaster.signature import HandlerSignature
from jobmaster.store import ENQUEUE_CHUNK, NewJob
from jobmaster.store.enqueueing import EnqueueRefused

if TYPE_CHECKING:
    from jobmaster.registry_view import RegistryView

ENQUEUE_FAILED = "enqueue failed; the job may not have been created"

P = ParamSpec("P")
R = TypeVar("R")


class JobOptions(Generic[P, R]):
    """Per-enqueue options, kept apart from the job's own arguments."""

    def __init__(
        self,
        handler: JobHandler[P, R],
        *,
        delay: float | timedelta | None = None,
        at: datetime | None = None,
        priority: int | None = None,
        job_id: str | None = None,
        queue: str | None = None,
        tags: Sequence[str] | None = None,
        after: Iterable[Dependency] | None = None,
        after_any: Iterable[Dependency] | None = None,
    ) -> None:
        definition = handler.definition
        self.handler = handler
        self.delay_ms = delay_to_ms(delay, at)
        self.priority = definition.priority if priority is None else check_priority(priority)
        self.job_id = None if job_id is None else check_job_id(job_id)
        self.queue = definition.queue if queue is None else check_queue(queue)
        self.tags = definition.tags if tags is None else check_tags(tags)
        self.max_payload = handler.registry.settings.max_payload
        self.after = dependencies(after, "after")
        self.after_any = dependencies(after_any, "after_any")
        self._packer: RecordPacker | None = None  # made on first use

    def call(self, *args: P.args, **kwargs: P.kwargs) -> Call:
        """Validate a call without enqueueing it: a part of a flow or a group."""
        return Call(
            self.handler,
            self._encode_one(args, kwargs)[0],
            self.queue,
            self.priority,
            self.delay_ms,
            self.job_id,
            self.tags,
            self.after,
            self.after_any,
        )

    async def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """Validate the call and enqueue one job; see :meth:`JobHandler.enqueue`."""
        return (await self._enqueue(self._encode_one(args, kwargs), self.job_id))[0]

    def enqueue_sync(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        return self._enqueue_sync(self._encode_one(args, kwargs), self.job_id)[0]

    async def enqueue_many(
        self, calls: Iterable[Sequence[Any] | Mapping[str, Any]]
    ) -> list[JobHandle[R]]:
        """Enqueue many jobs in one pipelined batch; all are validated before any is written.

        Each call is a sequence of positional arguments or a mapping of keyword arguments.
        """
        return await self._enqueue(self._encode_many(calls), None)

    def enqueue_many_sync(
        self, calls: Iterable[Sequence[Any] | Mapping[str, Any]]
    ) -> list[JobHandle[R]]:
        return self._enqueue_sync(self._encode_many(calls), None)

    async def _enqueue(self, arguments: list[bytes], job_id: str | None) -> list[JobHandle[R]]:
        """Enqueue jobs with these validated, packed arguments."""
        if self.after or self.after_any:  # see related_enqueue.py
            return await self._enqueue_related(arguments, job_id)
        jobs: list[NewJob] = []

        registry = self.handler.registry
        hooks = registry.hooks
        request, headers = self._before_enqueue(len(arguments))

        def batches() -> Iterator[list[NewJob]]:  # built while Redis runs the one before
            for batch in self._batches(arguments, job_id, headers):
                jobs.extend(batch)
                yield batch

        controls = self.handler.controls
        created: Sequence[bool | str]
        try:
            with redis_errors(ENQUEUE_FAILED, registry.settings.redis_url):
                store = registry.connection().store
                if controls.active:  # unique keys and limits: see flow_control.py
                    lines = [controls.line(packed) for packed in arguments]
                    for _ in batches():  # builds `jobs`
                        pass
                    created = await store.limits.enqueue(self.queue, jobs, lines)
                else:
                    created = await store.jobs.enqueue_batches(self.queue, batches())
        except RedisFull as exc:
            raise self._refused(jobs, len(arguments), exc) from exc.__cause__
        except NotReplicated as exc:
            exc.handles = self._handles(jobs, exc.created)
            raise
        if hooks is not None and request is not None:
            hooks.after_enqueue(request, [job.id for job in jobs])
        return self._handles(jobs, created)

    async def _enqueue_related(
        self, arguments: list[bytes], job_id: str | None
    ) -> list[JobHandle[R]]:
        """Enqueue jobs with dependencies (blocked until they are met)."""
        from jobmaster.related_enqueue import enqueue_related

        jobs = [
            FlowJob(
                Call(self.handler, packed, self.queue, self.priority, self.delay_ms, job_id,
                     self.tags),
                job_id or new_id(),
                self.after,
                self.after_any,
            )
            for packed in arguments
        ]  # fmt: skip
        return await enqueue_related(self.handler.registry, jobs)

    def _enqueue_sync(self, arguments: list[bytes], job_id: str | None) -> list[JobHandle[R]]:
        """:meth:`_enqueue` on the calling thread's blocking connection, when there is one."""
        registry = self.handler.registry
        producer = registry.blocking_producer()
        if producer is None or self.handler.controls.active or self.after or self.after_any:
            return registry.run_sync(self._enqueue(arguments, job_id))
        hooks = registry.hooks
        request, headers = self._before_enqueue(len(arguments))
        jobs = [job for batch in self._batches(arguments, job_id, headers) for job in batch]
        try:
            with redis_errors(ENQUEUE_FAILED, registry.settings.redis_url):
                created = producer.enqueue(self.queue, jobs)
        except RedisFull as exc:
            raise self._refused(jobs, len(arguments), exc) from exc.__cause__
        except NotReplicated as exc:
            exc.handles = self._handles(jobs, exc.created)
            raise
        if hooks is not None and request is not None:
            hooks.after_enqueue(request, [job.id for job in jobs])
        return self._handles(jobs, created)

    def _before_enqueue(self, count: int) -> tuple[EnqueueRequest | None, Mapping[str, str] | None]:
        """The middleware's request for an enqueue of ``count`` jobs, after its before-hooks
        ran, and the headers they gave the jobs (None, None without middleware: nothing is
        made on that path)."""
        hooks = self.handler.registry.hooks
        if hooks is None:
            return None, None
        request = EnqueueRequest(self.handler.definition.name, self.queue, count)
        hooks.before_enqueue(request)
        return request, request.headers

    def _encode_one(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[bytes]:
        """One call's arguments, validated and packed."""
        signature = self.handler.signature
        return [pack_arguments(signature, signature.encode_call(args, kwargs), self.max_payload)]

    def _encode_many(self, calls: Iterable[Sequence[Any] | Mapping[str, Any]]) -> list[bytes]:
        """Every call's arguments, validated and packed, before anything is written (raises
        for the first invalid one). Calls are bound straight into the mappings pydantic
        validates: a batch allocates as few objects per job as it can, since each one the
        garbage collector tracks brings its collections of the whole heap sooner."""
        if self.job_id is not None:
            raise InvalidArguments("job_id= names one job; it cannot be used with enqueue_many")
        calls = calls if isinstance(calls, list | tuple) else list(calls)
        signature = self.handler.signature
        if len(calls) == 1:
            return self._encode_one(*_split(calls[0]))
        bound = []
        for number, call in enumerate(calls):
            args, kwargs = _split(call)
            try:
                bound.append(signature.bind(args, kwargs))
            except InvalidArguments as exc:
                raise InvalidArguments(f"call #{number}: {exc}") from None
        encoded = signature.encode_many(bound)
        if encoded is not None:
            return pack_many_arguments(signature, encoded, self.max_payload)
        for number, arguments in enumerate(bound):  # which call is invalid, and why
            try:
                signature.dump(signature.validate(arguments))
            except InvalidArguments as exc:
                raise InvalidArguments(f"call #{number}: {exc}") from None
        raise AssertionError("a batch failed validation, yet each of its calls passes")

    def _batches(
        self, arguments: list[bytes], job_id: str | None, headers: Mapping[str, str] | None = None
    ) -> Iterator[list[NewJob]]:
        """The jobs of validated calls, built one batch of ``ENQUEUE_CHUNK`` at a time (with
        the headers middleware gave them, if any)."""
        priority, delay_ms = self.priority, self.delay_ms
        name = self.handler.definition.name
        if headers:
            packer = RecordPacker(name, priority, self.tags, headers)
        else:
            if self._packer is None:
                self._packer = RecordPacker(name, priority, self.tags)
            packer = self._packer
        created_ms = int(time.time() * 1000)
        if job_id is not None:
            ids = [job_id] * len(arguments)
        else:  # 128 random bits per job as 32 hex digits, drawn in one call for the batch
            digits = os.urandom(16 * len(arguments)).hex()
            ids = [digits[i : i + 32] for i in range(0, len(digits), 32)]
        for first in range(0, len(arguments), ENQUEUE_CHUNK):
            last = first + ENQUEUE_CHUNK
            records = packer.records(created_ms, arguments[first:last])
            yield [
                NewJob(new_id, record, priority, delay_ms)
                for new_id, record in zip(ids[first:last], records, strict=True)
            ]

    def _refused(self, jobs: list[NewJob], total: int, exc: RedisFull) -> RedisFull:
        """The error of an enqueue of ``total`` jobs that Redis refused for lack of memory,
        with the handles of those written before it filled up (None for the others; the
        jobs not built yet when it was refused were not written)."""
        cause = exc.__cause__
        created = list(cause.created) if isinstance(cause, EnqueueRefused) else []
        created += [None] * (total - len(created))
        registry, signature = self.handler.registry, self.handler.signature
        handles: list[JobHandle[R] | None] = [
            None
            if c is None
            else JobHandle(registry, jobs[i].id, self.queue, created=c, signature=signature)
            for i, c in enumerate(created)
        ]
        if total == 1:
            what = "the job was not written"
        else:
            written = sum(h is not None for h in handles)
            what = (
                f"{written:,} of the {total:,} jobs were written before it filled up, the "
                f"others not: this error's .handles has each call's handle, or None where "
                f"nothing was written; enqueue again only those calls"
            )
        return RedisFull(f"enqueue refused: {full(registry.settings.redis_url)}; {what}", handles)

    def _handles(self, jobs: list[NewJob], created: Sequence[bool | str]) -> list[JobHandle[R]]:
        """Each job's handle; where a live job held its unique key (its id in ``created``),
        that job's."""
        registry, signature = self.handler.registry, self.handler.signature
        return [
            JobHandle(
                registry,
                c if isinstance(c, str) else job.id,
                self.queue,
                created=c is True,
                signature=signature,
            )
            for job, c in zip(jobs, created, strict=True)
        ]


_NO_KEYWORDS: Mapping[str, Any] = MappingProxyType({})


def _split(call: Sequence[Any] | Mapping[str, Any]) -> tuple[Sequence[Any], Mapping[str, Any]]:
    """The positional and keyword arguments of one call of ``enqueue_many``."""
    if type(call) is tuple:  # the common case, without the slower ABC checks
        return call, _NO_KEYWORDS
    if isinstance(call, Mapping):
        return (), call
    if isinstance(call, Sequence) and not isinstance(call, str | bytes):
        return call, _NO_KEYWORDS
    raise InvalidArguments(
        f"enqueue_many takes tuples of positional arguments or dicts of keyword arguments, "
        f"got {call!r}"
    )


def split_arguments(
    arguments: Mapping[str, Any] | Sequence[Any] | None,
) -> tuple[Sequence[Any], Mapping[str, Any]]:
    """The positional and keyword arguments of a call given as a mapping (keywords) or a
    sequence (positionals)."""
    if arguments is None:
        return (), {}
    if isinstance(arguments, Mapping):
        return (), arguments
    if isinstance(arguments, Sequence) and not isinstance(arguments, str | bytes):
        return arguments, {}
    raise InvalidArguments(
        f"arguments must be a mapping (keywords) or a list (positional), got {arguments!r}"
    )


class JobHandler(Generic[P, R]):
    """A registered job: its definition, its function and the ways to enqueue it.

    Calling the handler object calls the function directly, in-process.
    """

    def __init__(
        self, registry: RegistryView, fn: Callable[..., Any], definition: JobDefinition
    ) -> None:
        self.registry = registry
        self.fn = fn
        self.definition = definition
        self.signature = HandlerSignature(fn, definition.name)
        self.controls = definition.controls()
        if self.controls.declared:
            try:
                self.controls.check(self.signature.names)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        self.is_async = inspect.iscoroutinefunction(fn)
        if definition.executor == "process":
            _check_process_handler(fn, self)
        self._defaults: JobOptions[P, R] = JobOptions(self)
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", definition.name)

    @property
    def name(self) -> str:
        return self.definition.name

    def __repr__(self) -> str:
        return f"<JobHandler {self.definition.name!r} queue={self.definition.queue!r}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def options(
        self,
        *,
        delay: float | timedelta | None = None,
        at: datetime | None = None,
        priority: int | None = None,
        job_id: str | None = None,
        queue: str | None = None,
        tags: Sequence[str] | None = None,
        after: Iterable[Dependency] | None = None,
        after_any: Iterable[Dependency] | None = None,
    ) -> JobOptions[P, R]:
        """Options for one enqueue, which never collide with the job's own arguments.

        Args:
            delay: run no sooner than this many seconds from now.
            at: run no sooner than this time (timezone-aware).
            priority: 0..9, higher first (default: the definition's).
            job_id: your own id; enqueueing an id that exists writes nothing and returns
                a handle to the existing job (``handle.created`` is False).
            queue: another queue than the definition's.
            tags: labels to find the job by (default: the definition's ``tags``).
            after: jobs (handles or ids) that must each succeed before this one runs; it is
                ``blocked`` until then (and stays blocked if one fails or is cancelled,
                until that one is retried and succeeds).
            after_any: jobs that must each end, in any final state, before this one runs.
        """
        return JobOptions(
            self,
            delay=delay,
            at=at,
            priority=priority,
            job_id=job_id,
            queue=queue,
            tags=tags,
            after=after,
            after_any=after_any,
        )

    def call(self, *args: P.args, **kwargs: P.kwargs) -> Call:
        """Validate a call without enqueueing it (a part of a :class:`~jobmaster.Flow` or
        of a group); raises :class:`InvalidArguments` as ``enqueue`` does."""
        return self._defaults.call(*args, **kwargs)

    async def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """Validate the arguments against the handler's signature and enqueue a job.

        Raises:
            InvalidArguments: the call does not fit the signature; nothing was written.
        """
        return await self._defaults.enqueue(*args, **kwargs)

    def enqueue_sync(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """:meth:`enqueue` for synchronous code (on a blocking connection of the calling
        thread: no event loop is involved)."""
        return self._defaults.enqueue_sync(*args, **kwargs)

    async def enqueue_many(
        self, calls: Iterable[Sequence[Any] | Mapping[str, Any]]
    ) -> list[JobHandle[R]]:
        """Enqueue many jobs in one pipelined batch; see :meth:`JobOptions.enqueue_many`."""
        return await self._defaults.enqueue_many(calls)

    def enqueue_many_sync(
        self, calls: Iterable[Sequence[Any] | Mapping[str, Any]]
    ) -> list[JobHandle[R]]:
        return self._defaults.enqueue_many_sync(calls)


def _check_process_handler(fn: Callable[..., Any], handler: JobHandler[Any, Any]) -> None:
    name = handler.definition.name
    if handler.is_async:
        raise ConfigError(f"job {name!r}: executor='process' runs sync handlers; this is async")
    if handler.signature.takes_context:
        raise ConfigError(
            f"job {name!r}: an executor='process' handler cannot take a Context "
            f"(the context lives in the worker process)"
        )
    if fn.__module__ == "__main__" or "<locals>" in fn.__qualname__:
        raise ConfigError(
            f"job {name!r}: an executor='process' handler must be a module-level function of "
            f"an importable module (the child process imports it by name)"
        )
