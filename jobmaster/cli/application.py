"""Finding the application's Registry for a command, and running a command against it."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from jobmaster.cli.output import err_console
from jobmaster.registry import Registry
from jobmaster.settings import ENV_PREFIX


class UsageError(Exception):
    """A command-line mistake, reported as one line and exit status 2."""


def load_registry(spec: str) -> Registry:
    """Import ``module:attribute`` (or ``module``, using its ``registry``) as a Registry."""
    module_name, _, attribute = spec.partition(":")
    attribute = attribute or "registry"
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise UsageError(
                f"cannot import {module_name!r} (from {spec!r}); run from the directory that "
                f"contains it or add that directory to PYTHONPATH"
            ) from None
        raise
    registry = getattr(module, attribute, None)
    if not isinstance(registry, Registry):
        found = type(registry).__name__ if registry is not None else "nothing"
        raise UsageError(f"{spec!r} must name a jobmaster.Registry, found {found}")
    return registry


def registry_from(args: argparse.Namespace) -> Registry:
    """The registry of ``--app``, else one with the settings of the ``JOBMASTER_*``
    variables."""
    return say_which_redis(load_registry(args.app) if getattr(args, "app", None) else Registry())


def say_which_redis(registry: Registry) -> Registry:
    """Say on stderr which Redis a command uses when nothing named one (no variable, no
    URL in the application), so that nobody reads another application's Redis unawares."""
    settings = registry.settings
    if "redis_url" not in settings.model_fields_set:
        err_console.print(
            f"note: {ENV_PREFIX}REDIS_URL is not set, so this uses the default Redis, "
            f"{settings.redis_url} (namespace {settings.namespace!r})",
            highlight=False,
            markup=False,
        )
    return registry


def run(registry: Registry, action: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run a command's coroutine, then close the registry's connections."""

    async def with_cleanup() -> int:
        try:
            return await action()
        finally:
            await registry.aclose()

    return asyncio.run(with_cleanup())
