"""The application of ``benchmarks/cluster.py``'s worker processes: one no-op job."""

from __future__ import annotations

from typing import Any

from jobmaster import Registry

registry = Registry()  # JOBMASTER_REDIS_URL is set by the benchmark


def declare(target: Registry) -> Any:
    """Declare the no-op job on a registry; its handler."""

    @target.job()
    async def noop() -> None:
        return None

    return noop


declare(registry)
