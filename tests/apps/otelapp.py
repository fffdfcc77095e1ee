"""The application of the tracing tests' worker processes: its spans go to the SDK's
in-memory exporter, written as JSON to $SPANS_FILE when the process exits."""

from __future__ import annotations

import atexit
import json
import os

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from jobmaster import Registry, Retry
from jobmaster.ops.otel import OpenTelemetry

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
registry = Registry()  # JOBMASTER_REDIS_URL is set by the test
registry.use(OpenTelemetry(tracer_provider=provider))


@registry.job(queue="traced", retry=Retry(max_attempts=1))
async def traced(fail: bool) -> str:
    if fail:
        raise RuntimeError("it broke")
    return "fine"


@atexit.register
def _write_spans() -> None:
    spans = [
        {
            "name": span.name,
            "kind": span.kind.name,
            "trace_id": span.context.trace_id,
            "span_id": span.context.span_id,
            "parent": span.parent.span_id if span.parent else None,
            "links": [[link.context.trace_id, link.context.span_id] for link in span.links],
            "status": span.status.status_code.name,
            "attributes": dict(span.attributes or {}),
            "events": [[e.name, dict(e.attributes or {})] for e in span.events],
        }
        for span in exporter.get_finished_spans()
    ]
    with open(os.environ["SPANS_FILE"], "w") as file:
        json.dump(spans, file)
