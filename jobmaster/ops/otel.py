"""OpenTelemetry tracing: ``registry.use(OpenTelemetry())`` (install ``jobmaster[otel]``).

Only opentelemetry-api is used: the application configures the SDK (a tracer provider and
its exporters) as it likes. In the producer, each enqueue call runs in a PRODUCER span
(``<queue> publish``) whose context (W3C ``traceparent``) is written in the record of every
job of the call. In the worker, each attempt runs in a CONSUMER span (``<queue> process``)
linked to that producer span (a link, not a parent: a job may run long after, and many
times). Attributes follow the messaging semantic conventions (``messaging.system``
"jobmaster", ``messaging.destination.name``, ``messaging.operation.type``,
``messaging.message.id``, ``messaging.batch.message_count``) with ``jobmaster.job.name``,
``jobmaster.attempt`` and ``jobmaster.outcome``; an attempt that fails sets the span's status
to ERROR and records an ``exception`` event with the error's type and message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from jobmaster.ops.middleware import AttemptEnd, AttemptInfo, EnqueueRequest, Middleware

SYSTEM = "jobmaster"


class OpenTelemetry(Middleware):
    """Spans around enqueues (PRODUCER) and attempts (CONSUMER, linked to their enqueue).

    Args:
        tracer_provider: where the spans go (default: the global tracer provider).
    """

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer("jobmaster", tracer_provider=tracer_provider)
        self._enqueues: dict[int, trace.Span] = {}
        self._attempts: dict[tuple[str, str, int], trace.Span] = {}

    def before_enqueue(self, request: EnqueueRequest) -> None:
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEM,
            "messaging.destination.name": request.queue,
            "messaging.operation.type": "publish",
            "jobmaster.job.name": request.name,
        }
        if request.count > 1:
            attributes["messaging.batch.message_count"] = request.count
        span = self._tracer.start_span(
            f"{request.queue} publish", kind=SpanKind.PRODUCER, attributes=attributes
        )
        propagate.inject(request.headers, context=trace.set_span_in_context(span))
        self._enqueues[id(request)] = span

    def after_enqueue(self, request: EnqueueRequest, job_ids: Sequence[str]) -> None:
        span = self._enqueues.pop(id(request), None)
        if span is None:
            return
        if len(job_ids) == 1:
            span.set_attribute("messaging.message.id", job_ids[0])
        span.end()

    def before_attempt(self, attempt: AttemptInfo) -> None:
        links = []
        if attempt.headers:
            produced = trace.get_current_span(propagate.extract(attempt.headers))
            context = produced.get_span_context()
            if context.is_valid:
                links.append(Link(context))
        span = self._tracer.start_span(
            f"{attempt.queue} process",
            kind=SpanKind.CONSUMER,
            links=links,
            start_time=int(attempt.started_at * 1e9),
            attributes={
                "messaging.system": SYSTEM,
                "messaging.destination.name": attempt.queue,
                "messaging.operation.type": "process",
                "messaging.message.id": attempt.job_id,
                "jobmaster.job.name": attempt.name,
                "jobmaster.attempt": attempt.attempt,
                "jobmaster.worker.id": attempt.worker_id,
            },
        )
        self._attempts[attempt.queue, attempt.job_id, attempt.attempt] = span

    def after_attempt(self, attempt: AttemptInfo, end: AttemptEnd) -> None:
        span = self._attempts.pop((attempt.queue, attempt.job_id, attempt.attempt), None)
        if span is None:
            return
        span.set_attribute("jobmaster.outcome", end.outcome)
        if end.error_type:
            span.add_event(
                "exception",
                {"exception.type": end.error_type, "exception.message": end.error_message},
            )
            span.set_status(Status(StatusCode.ERROR, f"{end.error_type}: {end.error_message}"))
        span.end()
