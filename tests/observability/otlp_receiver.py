"""An OTLP/gRPC receiver of our own, standing in for an OpenTelemetry collector: it keeps every
span and metric point that Envoy and the services export, for the tests to read."""

from __future__ import annotations

import threading
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: str  # "SERVER", "CLIENT", "PRODUCER", "CONSUMER", "INTERNAL"
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root
    attributes: dict[str, Any]


@dataclass(frozen=True)
class Point:
    service: str
    metric: str
    attributes: dict[str, Any]
    value: float  # a gauge's value, a histogram's count


def _value(value: AnyValue) -> Any:
    return getattr(value, value.WhichOneof("value") or "string_value")


def _attributes(pairs: list[KeyValue]) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


class OtlpReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """`keep=False` only counts spans (a benchmark's collector: tests/load/bench_checkout.py)."""

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.span_count = 0
        self._lock = threading.Lock()
        self._spans: list[Span] = []
        self._points: list[Point] = []
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(self), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop(grace=None)

    def spans(self) -> list[Span]:
        with self._lock:
            return list(self._spans)

    def points(self) -> list[Point]:
        with self._lock:
            return list(self._points)

    def Export(self, request: Any, context: Any) -> Any:
        if not self.keep:
            count = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
            with self._lock:
                self.span_count += count
            return trace_service_pb2.ExportTraceServiceResponse()
        received = []
        for resource_spans in request.resource_spans:
            service = _attributes(resource_spans.resource.attributes).get("service.name", "")
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    received.append(
                        Span(
                            service=service,
                            name=span.name,
                            kind=SpanProto.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            attributes=_attributes(span.attributes),
                        )
                    )
        with self._lock:
            self._spans += received
            self.span_count += len(received)
        return trace_service_pb2.ExportTraceServiceResponse()

    def _keep_metrics(self, request: Any) -> None:
        if not self.keep:
            return
        received = []
        for resource_metrics in request.resource_metrics:
            service = _attributes(resource_metrics.resource.attributes).get("service.name", "")
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    kind = metric.WhichOneof("data")
                    for point in getattr(metric, kind).data_points:
                        value = point.count if kind == "histogram" else _number(point)
                        attributes = _attributes(point.attributes)
                        received.append(Point(service, metric.name, attributes, value))
        with self._lock:
            self._points += received


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    def Export(self, request: Any, context: Any) -> Any:
        self._receiver._keep_metrics(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


def _number(point: Any) -> float:
    return point.as_double if point.WhichOneof("value") == "as_double" else point.as_int


def render(spans: list[Span]) -> str:
    """A trace as an indented tree, one span per line: `service KIND name`."""
    children: dict[str, list[Span]] = {}
    ids = {s.span_id for s in spans}
    for span in spans:
        children.setdefault(span.parent_id if span.parent_id in ids else "", []).append(span)
    lines: list[str] = []

    def walk(parent: str, depth: int) -> None:
        for span in children.get(parent, []):
            lines.append(f"{'  ' * depth}{span.service} {span.kind} {span.name}")
            walk(span.span_id, depth + 1)

    walk("", 0)
    return "\n".join(lines)
