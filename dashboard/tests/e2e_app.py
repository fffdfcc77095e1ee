"""The application behind the dashboard's browser tests and its README screenshots.

Three queues of ordinary-looking jobs: ``emails`` (``send_email`` refuses an address without
``@``), ``reports`` (``build_report`` fails for an unknown region; ``sync_ledger`` fails
until a Redis key is set, so that a retry can succeed) and ``media`` (``transcode`` runs,
reporting progress, until its worker stops). Run by real worker processes as
``jobmaster worker e2e_app:registry`` from this directory, and served by
``python -m jobmaster_dashboard --app e2e_app:registry``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

import redis

from jobmaster import Context, Registry, Retry, Webhook

WEBHOOK_URL = os.environ.get("E2E_WEBHOOK_URL", "http://127.0.0.1:9/signups")
"""Where ``welcome`` posts its webhook (the tests set it to a server of theirs)."""
REGIONS = {"eu": 1280, "us": 2210, "apac": 740}
"""Rows of sales data per region; ``build_report`` fails for any other region."""


def _load_rows(kind: str, region: str) -> int:
    try:
        return REGIONS[region]
    except KeyError:
        raise LookupError(f"no {kind} data for region {region!r}") from None


def _summarize(kind: str, region: str) -> dict[str, Any]:
    rows = _load_rows(kind, region)
    return {"kind": kind, "region": region, "rows": rows}


def declare_jobs(registry: Registry) -> None:
    """Declare the application's jobs on ``registry`` (the tests' own registry, or below)."""
    redis_url = registry.settings.redis_url

    @registry.job(queue="emails", retry=Retry(max_attempts=1))
    def send_email(ctx: Context, to: str, subject: str) -> dict[str, str]:
        if "@" not in to:
            raise ValueError(f"invalid address {to}")
        ctx.log.info("delivered", to=to, subject=subject)
        return {"to": to, "message_id": hashlib.sha1(to.encode()).hexdigest()[:12]}

    @registry.job(queue="reports", retry=Retry(max_attempts=1))
    def build_report(ctx: Context, kind: str, region: str = "eu") -> dict[str, Any]:
        ctx.log.info("loading rows", kind=kind, region=region)
        ctx.progress(0.5)
        return _summarize(kind, region)

    @registry.job(queue="reports", retry=Retry(max_attempts=1))
    def sync_ledger(gate: str) -> str:
        """Fails while the Redis key ``gate`` is unset (the ledger is "down")."""
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            status: str | None = client.get(gate)  # type: ignore[assignment]
        finally:
            client.close()
        if status is None:
            raise RuntimeError(f"ledger service unavailable ({gate} is not set)")
        return status

    @registry.job(queue="media", timeout=600)
    async def transcode(ctx: Context, video: str, seconds: float) -> str:
        steps = max(1, int(seconds * 10))
        for step in range(steps):
            ctx.progress(round(step / steps, 2))
            await asyncio.sleep(0.1)
        return video.replace(".mov", ".mp4")

    @registry.job(
        queue="emails", notify=Webhook(WEBHOOK_URL, on=("succeeded",), backoff=0.2, timeout=5)
    )
    def welcome(user: str) -> str:
        return f"welcomed {user}"

    @registry.job(queue="media")
    async def thumbnail(path: str, width: int = 320) -> str:
        return f"{path}@{width}w.jpg"


registry = Registry()  # $JOBMASTER_REDIS_URL, set by the tests
declare_jobs(registry)
