"""OpenTelemetry: one tracer provider per process, W3C `traceparent` in NATS headers.

Spans are always created (so trace ids exist and propagate); they are exported over OTLP/HTTP
only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. `span` opens the per-job spans: while no span
processor listens (no exporter), it opens a non-recording span with fresh ids in the
parent's trace instead of a full SDK span, which nobody would see (the SDK span was 8 % of a
worker's CPU per job); ids, flags and propagation are the same either way.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from opentelemetry import context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
_IDS = RandomIdGenerator()
_provider: TracerProvider | None = None
_listened = False  # a span processor is attached: spans must be recorded


def provider(service: str = "baker") -> TracerProvider:
    """The process's tracer provider, created on first use."""
    global _provider, _listened  # noqa: PLW0603 - one provider per process, as OpenTelemetry has it
    if _provider is None:
        _provider = TracerProvider(resource=Resource.create({"service.name": service}))
        # A sampler of the operator's own decides flags the unrecorded path would not know.
        _listened = _listened or bool(os.environ.get("OTEL_TRACES_SAMPLER"))
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        if endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
                OTLPSpanExporter,
            )

            add_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(_provider)
    return _provider


def add_processor(processor: SpanProcessor) -> None:
    """Attach a span processor (tests use an in-memory exporter)."""
    global _listened  # noqa: PLW0603 - follows the process-wide provider
    provider().add_span_processor(processor)
    _listened = True


@contextlib.contextmanager
def span(
    tracer: trace.Tracer,
    name: str,
    *,
    parent: context.Context | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[trace.Span]:
    """A span made current for the block: recorded when a processor listens, else an
    unrecorded one with the same ids and flags (see the module docstring)."""
    if _listened:
        with tracer.start_as_current_span(name, context=parent, attributes=attributes) as live:
            yield live
        return
    unrecorded = trace.NonRecordingSpan(child_context(parent))
    token = context.attach(trace.set_span_in_context(unrecorded, parent))
    try:
        yield unrecorded
    finally:
        context.detach(token)


def child_context(parent: context.Context | None = None) -> trace.SpanContext:
    """Ids for a new span: the parent's trace (or a new one) and flags, a new span id."""
    up = trace.get_current_span(parent).get_span_context()
    if not up.is_valid:
        flags = trace.TraceFlags(trace.TraceFlags.SAMPLED)
        return trace.SpanContext(_IDS.generate_trace_id(), _IDS.generate_span_id(), False, flags)
    return trace.SpanContext(
        up.trace_id, _IDS.generate_span_id(), False, up.trace_flags, up.trace_state
    )


def tracer(name: str) -> trace.Tracer:
    return provider().get_tracer(name)


def inject(headers: MutableMapping[str, str]) -> None:
    """Write the current span's `traceparent` into message headers."""
    _PROPAGATOR.inject(headers)


def extract(headers: Mapping[str, str] | None) -> context.Context:
    """The trace context carried by message headers (empty context when none)."""
    return _PROPAGATOR.extract(dict(headers or {}))


def trace_id_of(span: trace.Span | None = None) -> str | None:
    """Hex trace id of a span (default: the current one), or None when there is none."""
    ctx = (span or trace.get_current_span()).get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def trace_id_from_headers(headers: Mapping[str, str] | None) -> str | None:
    """The trace id in a `traceparent` header, if any."""
    value = (headers or {}).get("traceparent", "")
    parts = value.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None
