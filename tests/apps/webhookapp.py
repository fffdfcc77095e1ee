"""The application of the webhook tests' worker processes: its jobs notify the URL in
$WEBHOOK_URL, signed with the secret "s3cret"."""

from __future__ import annotations

import os
import signal

from jobmaster import AttemptEnd, AttemptInfo, Middleware, Registry, Retry, Webhook

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


class DieAfterFinal(Middleware):
    """SIGKILLs the worker as soon as Redis recorded a job's end, before it does anything
    else (when $DIE_AFTER_FINAL is 1): a worker crashing right after a finish."""

    def on_final(self, attempt: AttemptInfo, end: AttemptEnd) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


if os.environ.get("DIE_AFTER_FINAL") == "1":
    registry.use(DieAfterFinal())
