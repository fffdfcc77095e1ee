"""What handles, handlers and schedules use of their Registry, as protocols.

:class:`jobmaster.Registry` satisfies :class:`RegistryView`. The modules that a registry
imports (handle, handler, schedules) type their back-reference with it, so that none of
them imports ``registry.py``: dependencies point one way, from the registry down.
"""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from jobmaster.connections import Connection
    from jobmaster.definition import JobDefinition
    from jobmaster.flow_control import FlowControls
    from jobmaster.ops.middleware import Hooks
    from jobmaster.settings import Settings
    from jobmaster.signature import HandlerSignature
    from jobmaster.store.blocking import BlockingProducer

T = TypeVar("T")


class DefinedJob(Protocol):
    """A declared job: its definition and the signature its arguments are checked with."""

    @property
    def definition(self) -> JobDefinition: ...

    @property
    def signature(self) -> HandlerSignature: ...

    @property
    def controls(self) -> FlowControls: ...


class RegisteredJob(DefinedJob, Protocol):
    """A declared job with its registry (what a call of it needs to be enqueued)."""

    @property
    def registry(self) -> RegistryView: ...


class RegistryView(Protocol):
    """The settings, jobs and connections of a registry."""

    @property
    def settings(self) -> Settings: ...

    @property
    def jobs(self) -> Mapping[str, DefinedJob]: ...

    @property
    def hooks(self) -> Hooks | None:
        """The hooks of the registry's middleware (None: it has none)."""
        ...

    def get(self, name: str) -> DefinedJob:
        """The job declared under ``name`` (:class:`UnknownJob` if none)."""
        ...

    def queues(self) -> list[str]:
        """The queues the registry's jobs go to by default."""
        ...

    def connection(self) -> Connection:
        """The store and waiter of the running event loop."""
        ...

    def blocking_producer(self) -> BlockingProducer | None:
        """The producer of the ``enqueue*_sync`` methods, where they have one."""
        ...

    def run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine from synchronous code."""
        ...
