"""Webhooks: a signed JSON POST when a job ends in a state one asked about.

Declared per job (``@registry.job(notify=Webhook(...))``, or several in a tuple) or for every
job of a registry (``registry.use(Webhook(...))``). Workers deliver them at least once, with
retries and backoff (:mod:`jobmaster.ops.deliveries`); each try is recorded on the job
(``Job.notifications``).

The request: ``POST url`` with a JSON body (:func:`payload`) and the headers

- ``Content-Type: application/json``
- ``X-Jobmaster-Delivery``: the delivery's id (the same on every try of one delivery: use it
  to ignore a repeated one).
- ``X-Jobmaster-Timestamp``: Unix time of the try, in seconds.
- ``X-Jobmaster-Signature``: ``sha256=`` and the hex HMAC-SHA256, keyed with the webhook's
  secret, of ``"{timestamp}.{body}"`` (only when it has a secret). :func:`verify` checks one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from jobmaster.ops.middleware import FINAL_STATES, AttemptEnd, AttemptInfo, Middleware

SIGNATURE_HEADER = "X-Jobmaster-Signature"
TIMESTAMP_HEADER = "X-Jobmaster-Timestamp"
DELIVERY_HEADER = "X-Jobmaster-Delivery"


class Webhook(Middleware):
    """Where and when to POST a job's end.

    Args:
        url: an http:// or https:// URL.
        on: the final states that trigger it: any of "succeeded", "failed", "cancelled".
        secret: the key of the HMAC-SHA256 signature (None: requests are not signed).
        max_tries: tries of one delivery before it is given up (each one recorded).
        backoff: seconds before the first retry; each retry waits twice as long as the one
            before, up to ``max_backoff``.
        max_backoff: the longest wait between two tries, in seconds.
        timeout: seconds a try may take.
        dashboard_url: the dashboard's address, to put a link to the job in the payload.

    Raises:
        ValueError: a bad URL, state or number.
    """

    def __init__(
        self,
        url: str,
        *,
        on: Iterable[str] = ("failed",),
        secret: str | None = None,
        max_tries: int = 8,
        backoff: float = 1.0,
        max_backoff: float = 600.0,
        timeout: float = 10.0,
        dashboard_url: str | None = None,
    ) -> None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"Webhook url must be an http:// or https:// URL, got {url!r}")
        states = (on,) if isinstance(on, str) else tuple(on)
        unknown = sorted(set(states) - FINAL_STATES)
        if unknown or not states:
            raise ValueError(
                f"Webhook on= takes final states among {sorted(FINAL_STATES)}, got {states!r}"
            )
        if secret is not None and (not isinstance(secret, str) or not secret):
            raise ValueError("Webhook secret= must be a non-empty string (or None)")
        if isinstance(max_tries, bool) or not isinstance(max_tries, int) or max_tries < 1:
            raise ValueError(f"Webhook max_tries= must be an integer >= 1, got {max_tries!r}")
        for name, value in (("backoff", backoff), ("max_backoff", max_backoff)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"Webhook {name}= must be a number of seconds >= 0")
        if not (isinstance(timeout, int | float) and timeout > 0):
            raise ValueError(f"Webhook timeout= must be a number of seconds > 0, got {timeout!r}")
        self.url = url
        self.on = frozenset(states)
        self.secret = secret
        self.max_tries = max_tries
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.timeout = float(timeout)
        self.dashboard_url = dashboard_url.rstrip("/") if dashboard_url else None
        self.key = hashlib.sha256(f"{url} {sorted(self.on)}".encode()).hexdigest()[:16]
        """Names this webhook in the deliveries kept in Redis (never the secret)."""

    def __repr__(self) -> str:
        return f"Webhook({self.url!r}, on={tuple(sorted(self.on))!r})"

    def delay(self, tries: int) -> float:
        """Seconds to wait after ``tries`` failed tries."""
        return float(min(self.max_backoff, self.backoff * 2.0 ** min(tries - 1, 60)))

    def sign(self, timestamp: str, body: bytes) -> dict[str, str]:
        """The signature headers of a request (none without a secret)."""
        if self.secret is None:
            return {}
        return {SIGNATURE_HEADER: signature(self.secret, timestamp, body)}


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` and the hex HMAC-SHA256 of ``"{timestamp}.{body}"``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    """Whether a received request carries a valid signature of ``secret`` (for receivers
    written in Python)."""
    given = headers.get(SIGNATURE_HEADER, "")
    expected = signature(secret, headers.get(TIMESTAMP_HEADER, ""), body)
    return hmac.compare_digest(given, expected)


def payload(
    webhook: Webhook, delivery_id: str, attempt: AttemptInfo, end: AttemptEnd
) -> dict[str, Any]:
    """The JSON body of a delivery."""
    links = {}
    if webhook.dashboard_url is not None:
        links["job"] = f"{webhook.dashboard_url}/job?queue={attempt.queue}&id={attempt.job_id}"
    error = None
    if end.error_type:
        error = {"type": end.error_type, "message": end.error_message}
    return {
        "delivery": delivery_id,
        "job_id": attempt.job_id,
        "name": attempt.name,
        "queue": attempt.queue,
        "state": end.next_state,
        "attempts": attempt.attempt,
        "error": error,
        "links": links,
    }


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
