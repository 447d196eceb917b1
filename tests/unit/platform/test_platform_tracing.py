"""Tracing without an exporter: nothing is recorded, trace ids still flow."""

from __future__ import annotations

from opentelemetry import trace

from services.platform.tracing import configure_tracing, current_trace_id


def test_without_an_exporter_spans_are_not_recorded_but_carry_trace_ids() -> None:
    configure_tracing("tracing-test")  # what every service does with no exporter set
    tracer = trace.get_tracer(__name__)
    with tracer.start_as_current_span("rpc") as outer:
        assert not outer.is_recording()  # no attributes, no span bookkeeping per RPC
        context = outer.get_span_context()
        assert context.is_valid
        assert current_trace_id() == format(context.trace_id, "032x")
        with tracer.start_as_current_span("call") as inner:
            # A child (an outbound call, an event written) keeps the trace.
            assert inner.get_span_context().trace_id == context.trace_id
    assert current_trace_id() is None
