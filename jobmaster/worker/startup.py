"""A worker's start: its Redis permissions are checked and its queues registered, trying
again while Redis cannot be reached."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from jobmaster.errors import RedisAccessDenied, describe, is_access_denied, safe_url
from jobmaster.store import Store
from jobmaster.store.woken_claim import COMMANDS
from jobmaster.worker.loops import RETRY_DELAYS, interruptible


async def start_up(
    store: Store, queues: Sequence[str], *, redis_url: str, stopping: asyncio.Event, log: Any
) -> dict[str, bytes] | None:
    """Check access and register ``queues``; the positions of their control streams before
    any claim, or None if the worker was stopped first.

    Raises:
        RedisAccessDenied: Redis refused the credentials, or a command jobmaster needs.
    """
    positions: dict[str, bytes] = {}

    async def check_access_and_register() -> None:
        refused = await store.access.refused_commands(queues[0])
        if refused:
            raise RedisAccessDenied(
                f"the Redis user of {safe_url(redis_url)} may not run {', '.join(refused)}, "
                f"which jobmaster needs (grant them with ACL SETUSER, e.g. +@all or "
                f"+{refused[0].lower()})"
            )
        if store.woken.available and await store.access.refused_commands(queues[0], COMMANDS):
            store.woken.available = False
            log.info(
                "an idle wait claims after its read returns: the Redis user may not run "
                "CLIENT ID or CLIENT UNBLOCK"
            )
        for queue in queues:
            await store.jobs.ensure_groups(queue)
        # Before the first claim: a cancellation requested for a job this worker claims
        # must come after the position its control listener reads from.
        positions.update(await store.control.newest_control_ids(list(queues)))

    tries = 0
    while not stopping.is_set():
        try:
            await interruptible(check_access_and_register(), stopping)
            return None if stopping.is_set() else positions
        except asyncio.CancelledError:
            raise
        except RedisAccessDenied:
            raise
        except Exception as exc:
            if is_access_denied(exc):
                raise RedisAccessDenied(
                    f"Redis at {safe_url(redis_url)} refused access: {exc}"
                ) from exc
            delay = RETRY_DELAYS[min(tries, len(RETRY_DELAYS) - 1)]
            tries += 1
            log.warning("start failed; retrying", error=describe(exc), retry_in=delay)
            await interruptible(asyncio.sleep(delay), stopping)
    return None
