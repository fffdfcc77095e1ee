"""The Redis commands of webhook deliveries (:mod:`jobmaster.ops.deliveries`): a queue's
due deliveries (written by finish.lua with their jobs' ends, see :func:`outbox_arguments`),
their claims by workers, and the record of each try on its job."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from jobmaster.store.connection import StoreConnection


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook delivery: the JSON body to POST, and the tries made so far."""

    id: str
    job_id: str
    webhook: str
    """The key of the webhook (:attr:`jobmaster.Webhook.key`)."""
    url: str
    tries: int
    body: str

    def encode(self) -> str:
        return json.dumps(
            {"job_id": self.job_id, "webhook": self.webhook, "url": self.url,
             "tries": self.tries, "body": self.body},
        )  # fmt: skip

    @staticmethod
    def decode(delivery_id: str, raw: bytes | str) -> Delivery:
        data = json.loads(raw)
        return Delivery(
            delivery_id, data["job_id"], data["webhook"], data["url"], data["tries"], data["body"]
        )


class NewDelivery(NamedTuple):
    """A delivery to write with its job's end (:meth:`JobCommands.finish`'s ``outbox``): only
    if that end is recorded, with ``state``."""

    state: str
    delivery: Delivery


def outbox_arguments(outbox: Sequence[NewDelivery]) -> list[str]:
    """finish.lua's ARGV for an outbox (none for an empty one): see webhook_outbox.lua."""
    if not outbox:
        return []
    argv = ["W"]
    for state, d in outbox:
        argv += (d.job_id, state, d.id, d.encode())
    return argv


class WebhookDeliveries:
    """Webhook deliveries kept in Redis, per queue, and the tries recorded on their jobs."""

    def __init__(self, conn: StoreConnection) -> None:
        self._redis = conn.redis
        self._keys = conn.keys
        self._claim = conn.script("claim_webhooks")

    async def claim(self, queue: str, lease_ms: int, count: int) -> list[Delivery]:
        """Due deliveries, held for ``lease_ms`` against the other workers."""
        k = self._keys.queue(queue)
        reply = await self._claim((k.webhook_due, k.webhook_deliveries), (lease_ms, count))
        return [Delivery.decode(reply[i].decode(), reply[i + 1]) for i in range(0, len(reply), 2)]

    async def record_try(
        self,
        queue: str,
        delivery: Delivery,
        outcome: dict[str, Any],
        *,
        retry_at_ms: int | None,
        retention_s: float,
    ) -> None:
        """Record a try on its job; then the delivery is done (``retry_at_ms`` None) or due
        again at ``retry_at_ms``."""
        k = self._keys.queue(queue)
        tries = k.notifications(delivery.job_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(tries, json.dumps(outcome))
            pipe.expire(tries, max(1, int(retention_s)))
            if retry_at_ms is None:
                pipe.zrem(k.webhook_due, delivery.id)
                pipe.hdel(k.webhook_deliveries, delivery.id)
            else:
                pipe.hset(k.webhook_deliveries, delivery.id, delivery.encode())
                pipe.zadd(k.webhook_due, {delivery.id: retry_at_ms}, xx=True)
            await pipe.execute()

    async def next_due_ms(self, queue: str) -> int | None:
        """When the queue's next delivery is due (Unix ms), None when it has none."""
        first = await self._redis.zrange(self._keys.queue(queue).webhook_due, 0, 0, withscores=True)
        return int(first[0][1]) if first else None

    async def notification_tries(self, queue: str, job_id: str) -> list[Any]:
        """Every try of a job's webhook deliveries (JSON objects), oldest first."""
        key = self._keys.queue(queue).notifications(job_id)
        raw: list[bytes] = await self._redis.lrange(key, 0, -1)  # type: ignore[misc]
        return [json.loads(item) for item in raw]
