"""An application for the tests of relations between jobs with real worker processes: jobs
in two queues (on two masters of the test cluster), a member that returns its index, and a
callback that returns the results of its group."""

from __future__ import annotations

import asyncio
from typing import Any

from jobmaster import Context, Registry

registry = Registry()  # JOBMASTER_REDIS_URL is set by the test


@registry.job(queue="flows")
async def node(n: int, pause: float = 0.0) -> int:
    await asyncio.sleep(pause)
    return n


@registry.job(queue="right")
async def far_node(n: int, pause: float = 0.0) -> int:
    await asyncio.sleep(pause)
    return n


@registry.job(queue="flows")
async def member(ctx: Context, pause: float = 0.0) -> int:
    await asyncio.sleep(pause)
    assert ctx.group is not None
    assert ctx.group.index is not None
    return ctx.group.index


@registry.job(queue="right")
async def collect(ctx: Context) -> list[Any]:
    assert ctx.group is not None
    return await ctx.group.results()
