"""A small application for the `jobmaster dashboard` command's tests."""

from __future__ import annotations

from jobmaster import Registry

registry = Registry()  # $JOBMASTER_REDIS_URL, set by the tests


@registry.job(queue="cli")
async def greet(name: str) -> str:
    return f"hello {name}"
