"""``executor="process"``: a sync handler run in a child process of its own.

For handlers that hold the GIL for long stretches. Each attempt runs in a process forked
from a forkserver that has the handler's module preloaded, so an attempt starts in
milliseconds. Arguments and results cross as msgpack bytes; the child validates the
arguments with the handler's own signature. A timeout, an idle timeout, a shutdown or a
lost lease kills the child: unlike a thread, a process can be stopped from outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import traceback
from functools import cache
from typing import TYPE_CHECKING, Any

from jobmaster.codec import pack, unpack
from jobmaster.errors import RateLimited, RetryLater

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.context import ForkServerContext

    from jobmaster.handler import JobHandler


@cache
def _context() -> ForkServerContext:
    """The forkserver context (multiprocessing is imported for process handlers only)."""
    import multiprocessing

    return multiprocessing.get_context("forkserver")


class ProcessHandlerError(Exception):
    """An exception raised by a handler in its child process, carried back as text."""

    def __init__(self, type_name: str, message: str, remote_traceback: str, retry: bool):
        super().__init__(message)
        self.type_name = type_name
        self.remote_traceback = remote_traceback
        self.retry = retry


class ProcessRetryLater(RetryLater):
    """``RetryLater`` raised in a child process."""


class ProcessRateLimited(RateLimited):
    """``RateLimited`` raised in a child process."""


def preload(handlers: list[JobHandler[Any, Any]]) -> None:
    """Have the forkserver import the modules of these handlers once, before any attempt."""
    modules = sorted({h.fn.__module__ for h in handlers})
    if modules:
        _context().set_forkserver_preload(modules)


def locate(handler: JobHandler[Any, Any]) -> tuple[str, str]:
    """Where a child process finds the handler: its module and its name there."""
    return handler.fn.__module__, handler.fn.__qualname__


def _child(module: str, name: str, arguments: bytes, tries: int, out: Connection) -> None:
    try:
        try:
            handler = getattr(importlib.import_module(module), name)
        except BaseException as exc:
            out.send_bytes(pack(["error", type(exc).__qualname__, str(exc), "", False]))
            return
        try:
            signature = handler.signature
            positional, keywords = signature.call_arguments(signature.validate(unpack(arguments)))
            value = handler.fn(*positional, **keywords)
            out.send_bytes(pack(["ok", signature.encode_result(value)]))
        except RetryLater as exc:
            out.send_bytes(pack(["later", exc.delay, str(exc)]))
        except RateLimited as exc:
            out.send_bytes(pack(["limited", exc.retry_after, str(exc)]))
        except BaseException as exc:
            retry = handler.definition.retry.retries(exc, tries)
            out.send_bytes(
                pack(["error", type(exc).__qualname__, str(exc), traceback.format_exc(), retry])
            )
    finally:
        out.close()


async def run_in_process(
    handler: JobHandler[Any, Any], arguments: dict[str, Any], tries: int
) -> Any:
    """Run one attempt in a child process; returns the result's wire form or raises."""
    module, name = locate(handler)
    context = _context()
    receive, send = context.Pipe(duplex=False)
    process = context.Process(
        target=_child, args=(module, name, pack(arguments), tries, send), daemon=True
    )
    process.start()
    send.close()
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(receive.fileno(), wake)
    try:
        await ready
        try:
            reply = unpack(receive.recv_bytes())
        except EOFError:
            process.join(timeout=5)
            raise ProcessHandlerError(
                "ProcessDied",
                f"the handler's process exited with status {process.exitcode} without a result",
                "",
                retry=False,
            ) from None
    finally:
        loop.remove_reader(receive.fileno())
        receive.close()
        if process.is_alive():
            process.kill()  # cancelled: a timeout, a shutdown or a lost lease
        await loop.run_in_executor(None, process.join, 5)
        with contextlib.suppress(ValueError):
            process.close()
    if reply[0] == "ok":
        return reply[1]
    if reply[0] == "later":
        raise ProcessRetryLater(reply[1], reply[2])
    if reply[0] == "limited":
        raise ProcessRateLimited(reply[1], reply[2])
    _, type_name, message, remote_traceback, retry = reply
    raise ProcessHandlerError(type_name, message, remote_traceback, retry)
