"""OpenTelemetry set-up: spans always exist (so logs carry trace ids); they are exported only
when the standard OTEL_EXPORTER_OTLP_ENDPOINT variable names a collector."""

from __future__ import annotations

import os

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def configure_tracing(service: str) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def current_traceparent() -> dict[str, str]:
    """W3C trace context of the current span, as headers to carry in a message."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier
