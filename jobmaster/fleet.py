"""Remote control of live workers: pause, resume, drain and stop them, by id, by host, or
all of them, through Redis (see :mod:`jobmaster.worker.remote_control` for the worker's side).

:class:`WorkerControl` holds the public methods :class:`jobmaster.Registry` offers; a command
goes to each chosen worker's command stream at once, and each worker's acknowledgement is
awaited on a list of its own (a blocking pop, no polling).
"""

from __future__ import annotations

import asyncio
import uuid

from jobmaster.errors import redis_errors
from jobmaster.models import WorkerCommandResult, WorkerInfo
from jobmaster.registry_view import RegistryView
from jobmaster.store import Store

ACK_TIMEOUT = 5.0
"""Default seconds to wait for a worker to acknowledge a command."""
PARALLEL_COMMANDS = 16
"""Workers a call waits on at once (each wait holds a connection of the registry's pool)."""


class WorkerControl:
    """Remote control of workers; a part of :class:`jobmaster.Registry`.

    Each method chooses its workers by ``worker_id``, by ``host`` (every live worker on it),
    or ``all=True`` (every live worker), exactly one of them, and returns one
    :class:`WorkerCommandResult` per chosen worker: ``delivered`` when the worker
    acknowledged the command within ``timeout`` seconds, with its ``state`` after it. A
    worker without a live heartbeat (it died, or never was) is reported as not delivered,
    and so is one that does not answer in time (the command is withdrawn).

    Raises:
        ValueError: not exactly one of ``worker_id``, ``host`` and ``all`` was given, or a
            timeout that is not positive.
        RedisUnavailable: Redis could not be reached.
    """

    async def pause_worker(
        self: RegistryView, worker_id: str | None = None, *, host: str | None = None,
        all: bool = False, timeout: float = ACK_TIMEOUT,
    ) -> list[WorkerCommandResult]:  # fmt: skip
        """Make workers claim nothing new; they keep running the jobs they have."""
        return await send_command(self, "pause", worker_id, host, all, timeout)

    async def resume_worker(
        self: RegistryView, worker_id: str | None = None, *, host: str | None = None,
        all: bool = False, timeout: float = ACK_TIMEOUT,
    ) -> list[WorkerCommandResult]:  # fmt: skip
        """Make paused workers claim jobs again."""
        return await send_command(self, "resume", worker_id, host, all, timeout)

    async def drain_worker(
        self: RegistryView, worker_id: str | None = None, *, host: str | None = None,
        all: bool = False, timeout: float = ACK_TIMEOUT,
    ) -> list[WorkerCommandResult]:  # fmt: skip
        """Make workers take nothing new, finish what they run within their grace period,
        and exit 0."""
        return await send_command(self, "drain", worker_id, host, all, timeout)

    async def stop_worker(
        self: RegistryView, worker_id: str | None = None, *, host: str | None = None,
        all: bool = False, timeout: float = ACK_TIMEOUT,
    ) -> list[WorkerCommandResult]:  # fmt: skip
        """Stop workers as SIGTERM does (sent twice: as a second SIGTERM, the jobs they run
        are handed back at once)."""
        return await send_command(self, "stop", worker_id, host, all, timeout)


async def send_command(
    registry: RegistryView, command: str, worker_id: str | None, host: str | None,
    every: bool, timeout: float,
) -> list[WorkerCommandResult]:  # fmt: skip
    """Send ``command`` to the chosen workers and wait for their acknowledgements."""
    if (worker_id is not None) + (host is not None) + every != 1:
        raise ValueError("choose the workers with one of: a worker id, host=..., all=True")
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    with redis_errors(f"sending {command} to workers", registry.settings.redis_url):
        store = registry.connection().store
        if worker_id is not None:
            ids = [worker_id]
        else:
            live = await store.workers.workers()
            ids = [w.id for w in live if _chosen(w, host)]
        slots = asyncio.Semaphore(PARALLEL_COMMANDS)

        async def send(worker: str) -> WorkerCommandResult:
            async with slots:
                return await _send(store, command, worker, timeout)

        return list(await asyncio.gather(*(send(i) for i in ids)))


def _chosen(worker: WorkerInfo, host: str | None) -> bool:
    return host is None or worker.hostname == host


async def _send(store: Store, command: str, worker_id: str, timeout: float) -> WorkerCommandResult:
    outcome = {"worker_id": worker_id, "command": command}
    if not await store.fleet.is_worker_live(worker_id):
        return WorkerCommandResult.model_validate(
            {**outcome, "delivered": False, "detail": "no live heartbeat: the worker is gone"}
        )
    ack_id = uuid.uuid4().hex
    entry_id = await store.fleet.send_worker_command(worker_id, command, ack_id)
    state = await store.fleet.wait_worker_ack(ack_id, timeout)
    if state is None:
        await store.fleet.withdraw_worker_command(worker_id, entry_id)
        detail = f"no acknowledgement within {timeout:g} s: the worker may have died"
        return WorkerCommandResult.model_validate({**outcome, "delivered": False, "detail": detail})
    return WorkerCommandResult.model_validate({**outcome, "delivered": True, "state": state})
