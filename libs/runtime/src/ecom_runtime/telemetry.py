"""OpenTelemetry set-up.

With the standard OTEL_EXPORTER_OTLP_ENDPOINT set, a service exports over OTLP/gRPC:
- traces: a span per RPC (server), per call to another service (client), per SQL statement
  (psycopg), per Redis command, per HTTP call (httpx: Stripe), per event published (producer)
  and applied (consumer), each continuing the trace the edge started, so one request is one
  trace across the services and their events;
- metrics: RED per RPC (`rpc.server.duration`: count by status code, and latency) and the
  outbox backlog (`outbox.backlog`, `outbox.oldest_age`).
The other OTEL_* variables apply as usual (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
OTEL_METRIC_EXPORT_INTERVAL, OTEL_EXPORTER_OTLP_HEADERS...).

Without it, nothing is recorded; only the trace context a caller sends is carried on (into
logs, calls and event headers), which costs next to nothing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import grpc
from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes

meter = metrics.get_meter("ecom")
# RED per RPC: the count is the rate, `rpc.grpc.status_code` splits out the errors.
rpc_duration = meter.create_histogram(
    "rpc.server.duration", unit="ms", description="Duration of RPCs served, by method and status"
)


def tracing_exported() -> bool:
    """Spans per RPC only when they go somewhere: the span interceptor costs a third of a small
    RPC's throughput. Without it the caller's traceparent is still continued (interceptors.py).
    """
    disabled = os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true"
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")) and not disabled


def span_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """A span per RPC served, when spans are exported; not for health checks, which Envoy and
    Kubernetes make every second or so."""
    if not tracing_exported():
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor
    from opentelemetry.instrumentation.grpc.filters import health_check, negate

    return [aio_server_interceptor(filter_=negate(health_check()))]


class EntryPointSampler(Sampler):
    """Starts a trace only where work enters a service: an RPC, an event published or applied,
    for the share `ratio` of them (OTEL_TRACES_SAMPLER_ARG). Requests through the edge come with
    its decision, which every span follows (ParentBased).

    A statement or Redis command with no span above it comes from a background loop (the
    outbox relay polling, an expiry sweep): a trace of one query each 200 ms is noise.
    """

    ENTRY_KINDS = (SpanKind.SERVER, SpanKind.CONSUMER, SpanKind.PRODUCER)

    def __init__(self, ratio: float = 1.0) -> None:
        self._ratio = TraceIdRatioBased(ratio)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if kind not in self.ENTRY_KINDS:
            return SamplingResult(Decision.DROP)
        return self._ratio.should_sample(parent_context, trace_id, name, kind, attributes)

    def get_description(self) -> str:
        return "EntryPointSampler"


def configure_telemetry(service: str) -> None:
    exported = tracing_exported()
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service)})
    # Not exported: spans are never recorded, but each still gets an id and carries the trace.
    ratio = float(os.environ.get("OTEL_TRACES_SAMPLER_ARG") or 1.0)
    sampler = ParentBased(root=EntryPointSampler(ratio)) if exported else ALWAYS_OFF
    provider = TracerProvider(resource=resource, sampler=sampler)
    trace.set_tracer_provider(provider)
    if not exported:
        return
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    reader = PeriodicExportingMetricReader(OTLPMetricExporter())
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
    # Statements are recorded with their placeholders only, never the parameters.
    PsycopgInstrumentor().instrument(enable_commenter=False)
    RedisInstrumentor().instrument()
    HTTPXClientInstrumentor().instrument()


def current_traceparent() -> dict[str, str]:
    """W3C trace context of the current span, as headers to carry in a message."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier
