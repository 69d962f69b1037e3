"""OpenTelemetry: one tracer provider per process, W3C `traceparent` in NATS headers.

Spans are always created (so trace ids exist and propagate); they are exported over OTLP/HTTP
only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

from opentelemetry import context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None


def provider(service: str = "baker") -> TracerProvider:
    """The process's tracer provider, created on first use."""
    global _provider  # noqa: PLW0603 - one provider per process is OpenTelemetry's model
    if _provider is None:
        _provider = TracerProvider(resource=Resource.create({"service.name": service}))
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        if endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
                OTLPSpanExporter,
            )

            _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(_provider)
    return _provider


def add_processor(processor: SpanProcessor) -> None:
    """Attach a span processor (tests use an in-memory exporter)."""
    provider().add_span_processor(processor)


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
