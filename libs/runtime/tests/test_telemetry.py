"""Which spans start a trace: only where work enters a service, in the configured share."""

from __future__ import annotations

from ecom_runtime.telemetry import EntryPointSampler
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags


def recorded(ratio: float, *kinds: SpanKind) -> list[bool]:
    tracer = TracerProvider(sampler=ParentBased(root=EntryPointSampler(ratio))).get_tracer("t")
    return [tracer.start_span("s", kind=kind).is_recording() for kind in kinds]


def test_a_query_or_cache_call_alone_starts_no_trace() -> None:
    assert recorded(1.0, SpanKind.CLIENT, SpanKind.INTERNAL) == [False, False]


def test_rpcs_and_events_start_traces_in_the_configured_share() -> None:
    entries = (SpanKind.SERVER, SpanKind.CONSUMER, SpanKind.PRODUCER)
    assert recorded(1.0, *entries) == [True, True, True]
    assert recorded(0.0, *entries) == [False, False, False]
    assert 150 < sum(recorded(0.25, *[SpanKind.SERVER] * 1000)) < 350


def test_spans_below_a_recorded_one_are_recorded_whatever_their_kind() -> None:
    tracer = TracerProvider(sampler=ParentBased(root=EntryPointSampler(0.0))).get_tracer("t")
    sampled_parent = SpanContext(1, 2, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    context = trace.set_span_in_context(NonRecordingSpan(sampled_parent))
    assert tracer.start_span("sql", kind=SpanKind.CLIENT, context=context).is_recording()
