"""What the worker's background loops share: retries with back-off, pauses that end when the
worker closes, and blocking reads that a stop abandons.

Every loop stops on the worker's ``closed`` event, not only by cancellation (which a client
library may swallow).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from jobmaster.errors import describe

BLOCK_MS = 5_000
"""Longest blocking read for new entries or timers (shorter waits come from due times)."""
RETRY_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
"""Back-off between tries of a Redis call that failed."""


async def with_retries(
    what: str,
    action: Callable[[], Awaitable[Any]],
    *,
    log: Any,
    closed: asyncio.Event,
    attempts: int | None = None,
) -> None:
    """Run ``action`` until it succeeds (or ``attempts`` run out, or, without a limit, the
    worker closes), backing off between tries: a worker outlives a Redis restart or a
    network blip."""
    tries = 0
    while True:
        try:
            await action()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            tries += 1
            if (attempts is None and closed.is_set()) or (
                attempts is not None and tries >= attempts
            ):
                log.error(f"{what} failed; giving up", error=describe(exc), tries=tries)
                return
            delay = RETRY_DELAYS[min(tries - 1, len(RETRY_DELAYS) - 1)]
            log.warning(f"{what} failed; retrying", error=describe(exc), retry_in=delay)
            await asyncio.sleep(delay)


async def pause(closed: asyncio.Event, seconds: float) -> None:
    """Sleep in a background loop; returns at once when the worker closes."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await closed.wait()


async def interruptible(
    wait: Coroutine[Any, Any, Any], stopping: asyncio.Event, *wakes: asyncio.Event
) -> None:
    """Wait on a blocking read, or until ``stopping`` (or one of ``wakes``) is set.

    The read is abandoned rather than awaited after a stop (nothing is lost: it only
    waits for work): cancelling a blocked read is not reliably prompt in redis-py.
    """
    read = asyncio.ensure_future(wait)
    stops = {asyncio.ensure_future(event.wait()) for event in (stopping, *wakes)}
    done, _ = await asyncio.wait({read, *stops}, return_when=asyncio.FIRST_COMPLETED)
    for stop in stops:
        stop.cancel()
    if read in done:
        with contextlib.suppress(TimeoutError):  # a wait with a timeout of its own
            read.result()
    else:
        read.cancel()
        read.add_done_callback(_consume)


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned future's outcome, so that it is not reported as unretrieved."""
    if not future.cancelled():
        future.exception()
