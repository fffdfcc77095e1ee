"""A schedule whose job runs longer than its interval, and is unique: ticks while it runs
create nothing."""

from __future__ import annotations

import asyncio

from jobmaster import Registry

registry = Registry()  # JOBMASTER_REDIS_URL is set by the test


@registry.job(queue="ticks", unique=True)
async def overlapping() -> None:
    await asyncio.sleep(2.5)


registry.schedule("every-second", overlapping, every=1)
