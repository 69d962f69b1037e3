"""Per-job spans: recorded when a processor listens, unrecorded but with the same ids if not."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from adapters import tracing

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def traceparent() -> str:
    headers: dict[str, str] = {}
    tracing.inject(headers)
    return headers["traceparent"]


@pytest.fixture
def unheard(monkeypatch: pytest.MonkeyPatch) -> trace.Tracer:
    monkeypatch.setattr(tracing, "_listened", False)
    return TracerProvider().get_tracer("test")


def test_an_unrecorded_span_continues_the_parents_trace(unheard: trace.Tracer) -> None:
    parent = tracing.extract({"traceparent": PARENT})
    with tracing.span(unheard, "job.run", parent=parent, attributes={"job.id": "j"}) as span:
        assert not span.is_recording()
        version, trace_id, span_id, flags = traceparent().split("-")
        assert (version, trace_id, flags) == ("00", PARENT.split("-")[1], "01")
        assert span_id not in ("00f067aa0ba902b7", "0" * 16)
        assert tracing.trace_id_of() == trace_id
    assert not trace.get_current_span().get_span_context().is_valid  # restored after


def test_an_unsampled_parent_stays_unsampled(unheard: trace.Tracer) -> None:
    parent = tracing.extract({"traceparent": PARENT[:-2] + "00"})
    with tracing.span(unheard, "job.run", parent=parent):
        assert traceparent().endswith("-00")


def test_without_a_parent_a_new_sampled_trace_begins(unheard: trace.Tracer) -> None:
    with tracing.span(unheard, "job.dispatch"):
        first = traceparent()
    with tracing.span(unheard, "job.dispatch"):
        second = traceparent()
    assert first.endswith("-01") and second.endswith("-01")
    assert first.split("-")[1] != second.split("-")[1]


def test_a_listened_span_is_recorded_as_the_sdk_would(monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_listened", True)
    parent = tracing.extract({"traceparent": PARENT})
    with (
        pytest.raises(RuntimeError),
        tracing.span(provider.get_tracer("t"), "job.run", parent=parent, attributes={"a": 1}),
    ):
        raise RuntimeError("handler crashed")
    (recorded,) = exporter.get_finished_spans()
    assert recorded.name == "job.run"
    assert recorded.attributes == {"a": 1}
    assert recorded.parent is not None and recorded.parent.span_id == 0x00F067AA0BA902B7
    assert recorded.status.status_code == trace.StatusCode.ERROR  # the crash is on the span


def test_attaching_a_processor_turns_recording_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "_listened", False)
    monkeypatch.setattr(tracing, "_provider", TracerProvider())
    tracing.add_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    assert tracing._listened
