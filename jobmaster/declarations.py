"""Declaring jobs in code: what ``@registry.job(...)`` checks before a job is registered."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, overload

from pydantic import ValidationError

from jobmaster.context import Context
from jobmaster.definition import OPTIONS, JobDefinition, Retry
from jobmaster.errors import ConfigError, InvalidArguments
from jobmaster.overrides import JobConfig, env_name
from jobmaster.settings import JOBS_ENV_PREFIX, _explain

if TYPE_CHECKING:
    from jobmaster.handler import JobHandler
    from jobmaster.registry_view import DefinedJob

P = ParamSpec("P")
R = TypeVar("R")

DECORATOR_OPTIONS = ("name", *OPTIONS, "retry", "notify", "cron")
"""The keywords of ``@registry.job(...)``."""


class JobDecorator:
    """What ``@registry.job(...)`` returns: registers the function it decorates."""

    def __init__(
        self,
        register: Callable[[Callable[..., Any], dict[str, Any]], JobHandler[Any, Any]],
        options: dict[str, Any],
    ) -> None:
        unknown = sorted(set(options) - set(DECORATOR_OPTIONS))
        if unknown:
            raise ConfigError(
                f"unknown job option(s) {', '.join(map(repr, unknown))}; "
                f"valid options: {', '.join(DECORATOR_OPTIONS)}"
            )
        self._register = register
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
        return self._register(fn, self._options)


def job_definition(
    fn: Callable[..., Any],
    options: Mapping[str, Any],
    declared: Mapping[str, Any],
    job_config: JobConfig,
) -> JobDefinition:
    """The definition of a decorated function, overridden by the configuration.

    Raises:
        ConfigError: ``fn`` is not a function, its name is taken (in ``declared``), or an
            option has a bad value.
    """
    if not callable(fn):
        raise TypeError(f"@registry.job() decorates a function, got {fn!r}")
    name = str(options.get("name") or getattr(fn, "__name__", ""))
    if name in declared:
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
    return job_config.apply(definition)


def check_cron_job(handler: DefinedJob) -> None:
    """``@registry.job(cron=...)`` is for jobs that need no arguments."""
    try:
        handler.signature.encode_call((), {})
    except InvalidArguments:
        raise ConfigError(
            f"job {handler.definition.name!r}: cron= is for jobs without required arguments; "
            f"use registry.schedule(name, job, cron=..., args=...) to give them"
        ) from None


def check_configured_names(job_config: JobConfig, declared: Mapping[str, Any]) -> None:
    """Fail if the configuration names a job that is not declared (a misspelt name would
    otherwise be ignored)."""
    unknown = job_config.configured_names() - set(declared)
    env_names = {env_name(name) for name in declared}
    unknown |= {
        f"{JOBS_ENV_PREFIX}{name}__..." for name in job_config.configured_env_names() - env_names
    }
    if unknown:
        raise ConfigError(
            f"configuration names job(s) {', '.join(sorted(unknown))} that the registry "
            f"does not define; defined: {', '.join(sorted(declared)) or '(none)'}"
        )
