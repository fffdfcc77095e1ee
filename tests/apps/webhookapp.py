"""The application of the webhook tests' worker processes: its jobs notify the URL in
$WEBHOOK_URL, signed with the secret "s3cret"."""

from __future__ import annotations

import os

from jobmaster import Registry, Retry, Webhook

registry = Registry()  # JOBMASTER_REDIS_URL is set by the test
hook = Webhook(
    os.environ["WEBHOOK_URL"], on=("failed",), secret="s3cret", backoff=0.05, max_tries=5,
    timeout=1.0, dashboard_url="http://dash.example",
)  # fmt: skip


@registry.job(queue="hooks", retry=Retry(max_attempts=1), notify=hook)
async def fail_loudly(message: str) -> None:
    raise RuntimeError(message)


@registry.job(queue="hooks", notify=hook)
async def succeed(n: int) -> int:
    return n
