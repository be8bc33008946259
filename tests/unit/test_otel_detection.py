"""trackline follows OpenTelemetry only when the process runs its SDK, and never imports it itself."""

from __future__ import annotations

import textwrap

from support.processes import run_python

SCRIPT = textwrap.dedent("""
    import sys
    from trackline import context
    from trackline.propagation import otel, outgoing_headers
    from trackline.tracecontext import new_trace

    seen = [otel.active(), "opentelemetry" in sys.modules]  # nothing imported it
    from opentelemetry import trace
    seen.append(otel.active())  # the API alone: a proxy provider, no SDK
    from opentelemetry.sdk.trace import TracerProvider
    trace.set_tracer_provider(TracerProvider())
    seen.append(otel.active())
    token = context.enter("o-1", new_trace(), otel=True)
    seen.append(sorted(outgoing_headers()))  # no OTel span current: trackline's own child span
    with trace.get_tracer("t").start_as_current_span("s") as span:
        sent = outgoing_headers()
        seen.append(sent["traceparent"].split("-")[2] == format(span.get_span_context().span_id, "016x"))
    context.leave(token)
    print(seen)
""")


def test_otel_is_followed_only_with_an_sdk_provider_and_its_span_is_the_callers() -> None:
    done = run_python(SCRIPT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[False, False, False, True, ['X-Tracking-ID', 'traceparent'], True]"
