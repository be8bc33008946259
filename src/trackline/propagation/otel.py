"""OpenTelemetry as the source of truth when it runs in the process (the ``otel`` extra: opentelemetry-api).

When the app (or ``opentelemetry-instrument``) has set an SDK tracer provider, the span OpenTelemetry has
current is the span of every line a request writes, and its propagator writes the ``traceparent`` of outgoing
calls and queued tasks; trackline's own trace is only the fallback where OpenTelemetry has no span (an app it
does not instrument). trackline never imports OpenTelemetry itself: ``active()`` looks for an
``opentelemetry.trace`` that someone else imported, so a process without it pays one dict lookup per request.
"""

from __future__ import annotations

import sys
from collections.abc import MutableMapping
from typing import TYPE_CHECKING

from trackline.tracecontext import TraceContext

if TYPE_CHECKING:
    from trackline.context import Scope


def active() -> bool:
    """Whether OpenTelemetry's API is loaded with a real (SDK) tracer provider set."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return False
    provider = trace.get_tracer_provider()
    return not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def current_span() -> TraceContext | None:
    """The span OpenTelemetry has current, as trackline's ``TraceContext`` (``parent_id``: the span's parent when
    the SDK records it), or ``None`` when it has none."""
    from opentelemetry.trace import get_current_span

    span = get_current_span()
    context = span.get_span_context()
    if not context.is_valid:
        return None
    parent = getattr(span, "parent", None)
    return TraceContext(f"{context.trace_id:032x}", f"{context.span_id:016x}",
                        f"{parent.span_id:016x}" if parent is not None else None,
                        f"{int(context.trace_flags):02x}", context.trace_state.to_header() or None)


def span_of(scope: Scope) -> TraceContext | None:
    """The span of what ``scope`` logs or reports now: OpenTelemetry's current one where it runs and has one,
    else the scope's own."""
    if scope.otel:
        return current_span() or scope.trace
    return scope.trace


def inject(headers: MutableMapping[str, str]) -> None:
    """Write OpenTelemetry's propagation headers (``traceparent``, ``tracestate``, baggage) of the current span
    into ``headers``; an instrumented client that makes its own client span writes over them with its own."""
    from opentelemetry.propagate import inject as inject_current

    inject_current(headers)
