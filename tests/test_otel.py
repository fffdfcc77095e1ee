"""OpenTelemetry: a PRODUCER span per enqueue call, its context carried in the job records,
and a CONSUMER span per attempt in a real worker process, linked to it."""

from __future__ import annotations

import json
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from jobmaster import Registry, Retry
from jobmaster.ops.otel import OpenTelemetry
from tests.conftest import finish, start_worker


async def test_attempt_spans_link_to_the_enqueue_span(
    registry: Registry, redis_url: str, tmp_path: Path
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry.use(OpenTelemetry(tracer_provider=provider))

    @registry.job(queue="traced", retry=Retry(max_attempts=1))
    async def traced(fail: bool) -> str:
        raise AssertionError("runs in the worker process")

    good = await traced.enqueue(False)
    bad = await traced.enqueue(True)
    batch = await traced.enqueue_many([(False,), (False,)])
    spans_file = tmp_path / "spans.json"
    worker = start_worker(
        "apps.otelapp:registry", redis_url, "--burst", env={"SPANS_FILE": str(spans_file)}
    )
    code, out = finish(worker)
    assert code == 0, out

    produced = exporter.get_finished_spans()
    assert [s.name for s in produced] == ["traced publish"] * 3
    assert all(s.kind == SpanKind.PRODUCER for s in produced)
    assert [s.attributes.get("messaging.message.id") for s in produced if s.attributes] == [
        good.id,
        bad.id,
        None,
    ]
    assert produced[2].attributes is not None
    assert produced[2].attributes["messaging.batch.message_count"] == 2
    producer_of = {good.id: produced[0], bad.id: produced[1]}
    producer_of |= {handle.id: produced[2] for handle in batch}

    consumed = {
        s["attributes"]["messaging.message.id"]: s for s in json.loads(spans_file.read_text())
    }
    assert set(consumed) == set(producer_of)
    for job_id, span in consumed.items():
        assert span["name"] == "traced process"
        assert span["kind"] == "CONSUMER"
        assert span["parent"] is None
        context = producer_of[job_id].context
        assert span["links"] == [[context.trace_id, context.span_id]]
        assert span["attributes"]["messaging.system"] == "jobmaster"
        assert span["attributes"]["messaging.operation.type"] == "process"
        assert span["attributes"]["jobmaster.attempt"] == 1
    assert consumed[good.id]["status"] == StatusCode.UNSET.name
    assert consumed[good.id]["attributes"]["jobmaster.outcome"] == "succeeded"
    assert consumed[bad.id]["status"] == StatusCode.ERROR.name
    assert consumed[bad.id]["events"] == [
        ["exception", {"exception.type": "RuntimeError", "exception.message": "it broke"}]
    ]
