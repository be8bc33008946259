"""W3C Trace Context (``traceparent``): parse and validate it, hold the request's span, make child headers.

No Flask import, like ``trackline.context``. Spec: https://www.w3.org/TR/trace-context/#traceparent-header
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar
from dataclasses import dataclass

_TRACEPARENT = re.compile(
    r"(?P<version>[0-9a-f]{2})-(?P<trace_id>[0-9a-f]{32})-(?P<parent_id>[0-9a-f]{16})-(?P<flags>[0-9a-f]{2})"
    r"(?P<rest>-.*)?"
)
_TRACESTATE = re.compile(r"[\x20-\x7e]{1,512}")  # printable ASCII, the spec's 512-character limit
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(frozen=True)
class TraceContext:
    """This request's place in a distributed trace: the caller's trace, a new span of ours."""

    trace_id: str
    span_id: str
    parent_id: str
    flags: str
    tracestate: str | None = None

    def child_traceparent(self) -> str:
        """The ``traceparent`` for an outgoing call made while serving this request (we are its parent)."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def parse_traceparent(value: str | None, tracestate: str | None = None) -> TraceContext | None:
    """A new server span for a valid incoming ``traceparent``; ``None`` for a missing or invalid one.

    A ``tracestate`` is kept (to be passed on unchanged) only alongside a valid ``traceparent``.
    """
    if not value:
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.group("version", "trace_id", "parent_id", "flags", "rest")
    if version == "ff" or trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    if version == "00" and rest is not None:  # version 00 has exactly four fields
        return None
    state = tracestate.strip() if tracestate else None
    if state is not None and not _TRACESTATE.fullmatch(state):
        state = None
    return TraceContext(trace_id=trace_id, span_id=new_span_id(), parent_id=parent_id, flags=flags, tracestate=state)


def new_span_id() -> str:
    while (span := secrets.token_hex(8)) == _ZERO_SPAN:
        pass
    return span


_trace: ContextVar[TraceContext | None] = ContextVar("trackline_trace", default=None)


def get_trace() -> TraceContext | None:
    """The current request's trace context, if the request came with a valid ``traceparent``."""
    return _trace.get()


def set_trace(trace: TraceContext | None) -> None:
    _trace.set(trace)
