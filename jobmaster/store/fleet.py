"""Remote control of workers: commands sent to one worker's stream, read by that worker with
a blocking read, and acknowledged on a list the sender waits on (no polling on either side)."""

from __future__ import annotations

from typing import Any

from jobmaster.store.connection import StoreConnection

COMMANDS_MAXLEN = 100
"""Entries kept in a worker's command stream (commands it has not read are far fewer)."""
COMMANDS_TTL_MS = 24 * 3600 * 1000
"""A command stream of a worker that died without cleaning up expires after a day."""
ACK_TTL_MS = 60_000
"""An acknowledgement nobody waited for expires after a minute."""


class FleetCommands:
    """Send commands to workers, read and acknowledge them."""

    def __init__(self, conn: StoreConnection) -> None:
        self._conn = conn
        self.redis = conn.redis
        self.keys = conn.keys

    async def is_worker_live(self, worker_id: str) -> bool:
        """Whether the worker's heartbeat has not expired."""
        return bool(await self.redis.exists(self.keys.worker(worker_id)))

    async def send_worker_command(self, worker_id: str, command: str, command_id: str) -> bytes:
        """Append a command to a worker's stream; its id in the stream."""
        key = self.keys.worker_commands(worker_id)
        fields = {"c": command, "a": command_id}
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(key, fields, maxlen=COMMANDS_MAXLEN, approximate=True)  # type: ignore[arg-type]
            pipe.pexpire(key, COMMANDS_TTL_MS)
            entry_id, _ = await pipe.execute()
        return bytes(entry_id)

    async def withdraw_worker_command(self, worker_id: str, entry_id: bytes) -> None:
        """Remove a command the worker did not acknowledge, so that it is not acted on late."""
        await self.redis.xdel(self.keys.worker_commands(worker_id), entry_id)

    async def wait_worker_ack(self, command_id: str, timeout: float) -> str | None:
        """The state a worker acknowledged a command with, or None after ``timeout`` s."""
        reply: Any = await self.redis.blpop(  # type: ignore[misc]
            [self.keys.worker_ack(command_id)], timeout=timeout
        )
        return None if reply is None else bytes(reply[1]).decode()

    async def read_worker_commands(
        self, worker_id: str, after: bytes, block_ms: int
    ) -> list[tuple[bytes, str, str]]:
        """A worker's commands after stream id ``after`` (blocking up to ``block_ms``, on a
        connection of its own whose wait stops at once when cancelled): (stream id, command,
        acknowledgement id) each."""
        key = self.keys.worker_commands(worker_id)
        reply = await self._conn.reader("fleet").xread({key: after}, block_ms=block_ms)
        commands: list[tuple[bytes, str, str]] = []
        for _, entries in reply or ():
            for entry_id, fields in entries:
                if isinstance(fields, list):  # a raw reply: [field, value, ...]
                    fields = dict(zip(fields[::2], fields[1::2], strict=True))
                command = fields.get(b"c", b"").decode(errors="replace")
                commands.append((bytes(entry_id), command, fields.get(b"a", b"").decode()))
        return commands

    async def acknowledge_worker_command(self, command_id: str, state: str) -> None:
        """Tell the sender of a command that it was applied, and the worker's state now."""
        key = self.keys.worker_ack(command_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.rpush(key, state)
            pipe.pexpire(key, ACK_TTL_MS)
            await pipe.execute()

    async def forget_worker_commands(self, worker_id: str) -> None:
        """Delete a stopping worker's command stream."""
        await self.redis.delete(self.keys.worker_commands(worker_id))
