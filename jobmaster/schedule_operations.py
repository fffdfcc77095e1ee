"""A registry's schedules: those declared in code, and the operations on the schedules in
Redis, with Redis's errors named (what :class:`jobmaster.Registry`'s schedule methods do).

The schedule modules (and croniter) are imported on first use: an application without
schedules does not load them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from jobmaster.errors import ConfigError, redis_errors
from jobmaster.registry_view import RegistryView

if TYPE_CHECKING:
    from jobmaster.handler import JobHandler
    from jobmaster.models import Schedule
    from jobmaster.schedule_definition import ScheduleDefinition
    from jobmaster.schedules import ScheduleBook

T = TypeVar("T")


class ScheduleOperations:
    """Declares schedules in code and runs the operations on those in Redis.

    Attributes:
        declared: the schedules declared in code, by name, synced to Redis when a worker
            starts.
    """

    def __init__(self, registry: RegistryView) -> None:
        self.registry = registry
        self.declared: dict[str, ScheduleDefinition] = {}

    def declare(
        self, name: str, job: str | JobHandler[Any, Any], **timing: Any
    ) -> ScheduleDefinition:
        """Validate a schedule declared in code and keep it (a name is declared once)."""
        from jobmaster.schedule_definition import define

        if name in self.declared:
            raise ConfigError(f"a schedule named {name!r} is already declared")
        definition = self.declared[name] = define(self.registry, name, job, source="code", **timing)
        return definition

    async def add(self, name: str, job: str | JobHandler[Any, Any], **timing: Any) -> Schedule:
        """Validate a schedule and create it in Redis."""
        from jobmaster.schedule_definition import define

        definition = define(self.registry, name, job, source="api", **timing)
        return await self.run(f"adding schedule {name}", lambda book: book.add(definition))

    async def run(self, what: str, operation: Callable[[ScheduleBook], Awaitable[T]]) -> T:
        """Run an operation on the schedules of the running event loop's store; ``what``
        names it in a :class:`RedisUnavailable`."""
        from jobmaster.schedules import ScheduleBook

        with redis_errors(what, self.registry.settings.redis_url):
            return await operation(ScheduleBook(self.registry, self.registry.connection().store))
