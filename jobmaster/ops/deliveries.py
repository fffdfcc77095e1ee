"""Delivering webhooks from the workers, at least once.

A worker with webhooks (declared per job with ``notify=``, or for the registry with
``registry.use(Webhook(...))``) runs a :class:`Notifier`. For each batch of job ends it
writes, its completion writer asks the notifier for their deliveries (:meth:`Notifier.outbox`),
and the script that records the ends writes them to the queue's outbox in the same call
(finish.lua, webhook_outbox.lua): a delivery exists exactly when its job's end was recorded,
even if the worker dies right after. Every worker of the queue then claims due deliveries for
a lease, POSTs them, and records each try on the job; a failed try is due again after the
webhook's backoff, until ``max_tries``. A delivery claimed by a worker that dies is tried
again by another once its lease passed: a receiver may see a delivery twice (the
``X-Jobmaster-Delivery`` header says which), never none while a worker runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from jobmaster.errors import describe
from jobmaster.ops.middleware import FINAL_STATES, NO_HEADERS, AttemptEnd, AttemptInfo, Middleware
from jobmaster.ops.webhooks import DELIVERY_HEADER, TIMESTAMP_HEADER, Webhook, encode, payload
from jobmaster.store.webhooks import Delivery, NewDelivery, WebhookDeliveries

CLAIM_MARGIN = 1.0
"""A claim holds its deliveries for twice the longest timeout of the worker's webhooks plus
this many seconds; then another worker may try them (if this one died)."""
CLAIM_BATCH = 50
"""Deliveries claimed per queue per round."""
IDLE_WAIT = 1.0
"""Longest wait between two looks for due deliveries (another worker's, or a dead one's)."""
UNKNOWN_WEBHOOK_DELAY = 30.0
"""Seconds before a delivery whose webhook this worker does not know is tried again."""


class _Defined(Protocol):
    @property
    def definition(self) -> Any: ...


class EndedJob(Protocol):
    """What the notifier reads of an ended attempt (the worker's record of it)."""

    @property
    def job_id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def queue(self) -> str: ...

    @property
    def attempt(self) -> int: ...


class EndedAs(Protocol):
    """How it ended (the worker's completion)."""

    @property
    def outcome(self) -> str: ...

    @property
    def next_state(self) -> str: ...

    @property
    def error_type(self) -> str: ...

    @property
    def error_message(self) -> str: ...


class Notifier:
    """A worker's webhook deliveries: given to the script that records jobs' ends, then
    claimed and POSTed in a loop.

    Args:
        webhooks: the webhooks of each job, by job name.
        deliveries: the deliveries in Redis.
        queues: the queues whose deliveries this worker makes.
        retention: seconds the tries stay recorded on their job.
        log: the worker's logger.
        closed: set when the worker closes.
    """

    def __init__(
        self,
        webhooks: Mapping[str, Sequence[Webhook]],
        deliveries: WebhookDeliveries,
        queues: Sequence[str],
        *,
        retention: float,
        log: Any,
        closed: asyncio.Event,
    ) -> None:
        self._webhooks = webhooks
        self._by_key = {w.key: w for hooks in webhooks.values() for w in hooks}
        self._deliveries = deliveries
        self._queues = list(queues)
        self._retention = retention
        self._log = log
        self._closed = closed
        longest = max(w.timeout for w in self._by_key.values())
        self._lease_ms = int((2 * longest + CLAIM_MARGIN) * 1000)
        self._wanted = asyncio.Event()

    @staticmethod
    def webhooks_of(
        middleware: Sequence[Middleware], jobs: Mapping[str, _Defined]
    ) -> dict[str, tuple[Webhook, ...]]:
        """The webhooks of each job that has any: the registry's, then the job's own."""
        shared = tuple(m for m in middleware if isinstance(m, Webhook))
        found = {name: (*shared, *job.definition.notify) for name, job in jobs.items()}
        return {name: hooks for name, hooks in found.items() if hooks}

    def outbox(self, ended: Sequence[tuple[EndedJob, EndedAs]]) -> list[NewDelivery]:
        """The deliveries of a batch of attempt ends, to write with them."""
        deliveries = []
        for job, how in ended:
            state = how.next_state
            hooks = self._webhooks.get(job.name, ()) if state in FINAL_STATES else ()
            for webhook in hooks:
                if state in webhook.on:
                    attempt = AttemptInfo(
                        job.job_id, job.name, job.queue, job.attempt, 0.0, 0.0, "", NO_HEADERS
                    )
                    end = AttemptEnd(how.outcome, state, 0.0, how.error_type, how.error_message)
                    delivery_id = uuid.uuid4().hex
                    body = encode(payload(webhook, delivery_id, attempt, end)).decode()
                    delivery = Delivery(delivery_id, job.job_id, webhook.key, webhook.url, 0, body)
                    deliveries.append(NewDelivery(state, delivery))
        return deliveries

    def written(self) -> None:
        """Deliveries were written: look for due ones now."""
        self._wanted.set()

    async def run(self) -> None:
        """Make due deliveries until the worker closes."""
        failures = 0
        while not self._closed.is_set():
            self._wanted.clear()
            try:
                wait = await self.round()
                failures = 0
            except Exception as exc:
                failures += 1
                wait = min(IDLE_WAIT * failures, 10.0)
                self._log.warning("webhook deliveries failed; trying again", error=describe(exc))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wanted.wait()

    async def round(self) -> float:
        """Make the due deliveries; the seconds until the next is due."""
        wait = IDLE_WAIT
        for queue in self._queues:
            claimed = await self._deliveries.claim(queue, self._lease_ms, CLAIM_BATCH)
            if claimed:
                await asyncio.gather(*(self._deliver(queue, d) for d in claimed))
                wait = 0.0 if len(claimed) == CLAIM_BATCH else wait
            due = await self._deliveries.next_due_ms(queue)
            if due is not None:
                wait = min(wait, max(0.0, due / 1000 - time.time()))
        return wait

    async def _deliver(self, queue: str, delivery: Delivery) -> None:
        """One try of one delivery, recorded on its job."""
        number = delivery.tries + 1
        webhook = self._by_key.get(delivery.webhook)
        status: int | None = None
        if webhook is None:
            error: str | None = f"this worker has no webhook {delivery.webhook} for {delivery.url}"
        else:
            status, error = await asyncio.to_thread(_post, webhook, delivery)
        ok = error is None
        retry_at_ms: int | None = None
        if not ok and (webhook is None or number < webhook.max_tries):
            delay = UNKNOWN_WEBHOOK_DELAY if webhook is None else webhook.delay(number)
            retry_at_ms = int((time.time() + delay) * 1000)
        outcome = {
            "delivery": delivery.id, "url": delivery.url, "number": number,
            "at": datetime.now(UTC).isoformat(), "status": status, "error": error, "ok": ok,
            "final": retry_at_ms is None,
        }  # fmt: skip
        if not ok:
            self._log.warning(
                "webhook delivery failed", job_id=delivery.job_id, url=delivery.url, error=error,
                number=number, again=retry_at_ms is not None,
            )  # fmt: skip
        retried = Delivery(
            delivery.id, delivery.job_id, delivery.webhook, delivery.url, number, delivery.body
        )
        await self._deliveries.record_try(
            queue, retried, outcome, retry_at_ms=retry_at_ms, retention_s=self._retention
        )


def _post(webhook: Webhook, delivery: Delivery) -> tuple[int | None, str | None]:
    """POST a delivery's body: the answer's status, and an error unless it was 2xx."""
    # urllib.request (http.client, email) is imported by the first delivery, not by every
    # worker's start: most workers never send one
    import urllib.error
    import urllib.request

    body = delivery.body.encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "jobmaster-webhook",
        DELIVERY_HEADER: delivery.id,
        TIMESTAMP_HEADER: timestamp,
        **webhook.sign(timestamp, body),
    }
    request = urllib.request.Request(webhook.url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=webhook.timeout) as reply:
            status: int = reply.status
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code} {exc.reason}"
    except (OSError, ValueError) as exc:
        return None, describe(exc)
    if not 200 <= status < 300:
        return status, f"HTTP {status}"
    return status, None


def new_notifier(
    registry: Any, store: Any, queues: Sequence[str], log: Any, closed: asyncio.Event
) -> Notifier | None:
    """The notifier of a worker of ``registry`` (None when none of its jobs has webhooks)."""
    middleware = registry.hooks.middleware if registry.hooks is not None else ()
    webhooks = Notifier.webhooks_of(middleware, registry.jobs)
    if not webhooks:
        return None
    deliveries = store.webhooks
    retention = registry.settings.retention
    return Notifier(webhooks, deliveries, queues, retention=retention, log=log, closed=closed)
