"""W3C Trace Context (Level 2): ``traceparent`` and ``tracestate`` parsed to the letter, new traces, child spans.

Pure parsing and formatting: which span is current is ``trackline.context``'s. Spec:
https://www.w3.org/TR/trace-context-2/ (its test suite: github.com/w3c/trace-context, test/). What trackline
sends is always version ``00``.
"""

from __future__ import annotations

import re
from random import getrandbits
from typing import NamedTuple

SAMPLED = 0x01
#: Level 2's random-trace-id flag: the right-most 7 bytes of the trace-id are random. Kept when continuing a trace.
RANDOM = 0x02
#: The flags trackline knows; the others are reserved and MUST be sent as zero.
KNOWN_FLAGS = SAMPLED | RANDOM

#: The first 55 characters of every version: version-trace_id-parent_id-flags, lowercase hex.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_TRACEPARENT_LENGTH = 55
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_OWS = " \t"
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16

#: A tracestate list-member: key "=" value (the key grammar of Level 2, the value without "," and "=").
_MEMBER = re.compile(r"[a-z0-9][a-z0-9_\-*/@]{0,255}=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
MAX_MEMBERS = 32
#: What trackline propagates of a longer valid tracestate (trimmed by whole members), and which members go first.
MAX_TRACESTATE = 512
LONG_MEMBER = 128

#: A UUID4 (as the default generator makes, or a client sends): its 32 hex digits can be a random trace-id.
_UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", re.IGNORECASE)


class TraceContext(NamedTuple):
    """A span of a distributed trace: this request's (parent: the caller's span, or none when we started the
    trace) or an outgoing call's (parent: the request's span). A tuple: made on every request, cheaply."""

    trace_id: str
    span_id: str
    parent_id: str | None
    flags: str
    tracestate: str | None = None

    def child(self) -> TraceContext:
        """A new span of this trace whose parent is this span: one per outgoing call."""
        return TraceContext(self.trace_id, new_span_id(), self.span_id, self.flags, self.tracestate)

    def traceparent(self) -> str:
        """This span as the ``traceparent`` the callee receives (version 00: the callee's parent is this span)."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def headers(self) -> dict[str, str]:
        """``traceparent``, and ``tracestate`` when there is one: what a call in this span sends."""
        if self.tracestate:
            return {"traceparent": self.traceparent(), "tracestate": self.tracestate}
        return {"traceparent": self.traceparent()}

    def log_fields(self) -> dict[str, str]:
        """``trace_id``, ``span_id``, ``trace_flags`` and (when the span has one) ``parent_span_id``: the log-line
        fields (OpenTelemetry's log data model's names)."""
        fields = {"trace_id": self.trace_id, "span_id": self.span_id, "trace_flags": self.flags}
        if self.parent_id is not None:
            fields["parent_span_id"] = self.parent_id
        return fields


def parse_traceparent(value: str | None, tracestate: str | None = None) -> TraceContext | None:
    """A new server span of the caller's trace for a valid incoming ``traceparent``; ``None`` when it is missing
    or invalid (the caller then starts a trace with ``new_trace``; nothing of the invalid value is kept).

    ``tracestate`` (several headers joined with ","), is parsed only alongside a valid ``traceparent``. A value
    that is not a string (from a hand-made task message, a WSGI server breaking PEP 3333) is invalid.
    """
    if not value or not isinstance(value, str):
        return None
    value = value.strip(_OWS)
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_id, parent_id, flags = match.groups()
    if version == "ff" or trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    if len(value) != _TRACEPARENT_LENGTH and (version == "00" or value[_TRACEPARENT_LENGTH] != "-"):
        return None  # version 00 is exactly 55 characters; a higher one may add fields, each after a "-"
    return TraceContext(trace_id, new_span_id(), parent_id, f"{int(flags, 16) & KNOWN_FLAGS:02x}",
                        parse_tracestate(tracestate))


def parse_tracestate(value: str | None) -> str | None:
    """The ``tracestate`` to propagate, normalized (members joined by "," alone): ``None`` when it is missing,
    empty or invalid (a member breaking the grammar, more than 32 members as received, duplicates counted).

    A key that comes more than once keeps its left-most member only (the most recent: a vendor moves a member
    it changes to the left). The spec lets a vendor drop duplicate keys it did not add, and what trackline then
    sends has one entry per key, as the spec asks of every sender; W3C's test suite accepts this (or the
    duplicates as-is). A valid one over 512 characters loses whole members: those over 128 characters first,
    then from the end."""
    if not value or not isinstance(value, str):
        return None
    members = [member for member in (part.strip(_OWS) for part in value.split(",")) if member]
    if not members or len(members) > MAX_MEMBERS or not all(_MEMBER.fullmatch(member) for member in members):
        return None
    first_of_each_key: dict[str, str] = {}
    for member in members:
        first_of_each_key.setdefault(member.partition("=")[0], member)
    members = list(first_of_each_key.values())
    while len(",".join(members)) > MAX_TRACESTATE:
        long = [index for index, member in enumerate(members) if len(member) > LONG_MEMBER]
        del members[long[-1] if long else -1]
    return ",".join(members) or None


def new_trace(trace_id: str | None = None, sampled: bool = True, tracestate: str | None = None) -> TraceContext:
    """The root span of a new trace: ``trace_id`` (32 lowercase hex digits, random in at least the right-most
    7 bytes, as ``trace_id_of`` makes) or a random one; the random-trace-id flag is set, sampled as told."""
    if trace_id is not None and (_TRACE_ID.fullmatch(trace_id) is None or trace_id == _ZERO_TRACE):
        raise ValueError(f"not a trace-id (32 lowercase hex digits, not all zero): {trace_id!r}")
    return TraceContext(trace_id or random_trace_id(), new_span_id(), None, new_trace_flags(sampled), tracestate)


def new_trace_flags(sampled: bool) -> str:
    """The flags of a trace trackline starts: random trace-id, and sampled as told."""
    return f"{RANDOM | (SAMPLED if sampled else 0):02x}"


def trace_id_of(tracking_id: str) -> str | None:
    """The trace-id a new trace takes from its tracking ID: a UUID4's 32 hex digits (lowercase), else ``None``."""
    if _UUID4.fullmatch(tracking_id) is None:
        return None
    return tracking_id.replace("-", "").lower()


def random_trace_id() -> str:
    """32 random hex digits, not all zero, from ``random.getrandbits`` as OpenTelemetry's SDK draws them (no
    system call; the random module reseeds itself in each forked worker)."""
    while not (bits := getrandbits(128)):
        pass
    return f"{bits:032x}"


def new_span_id() -> str:
    while not (bits := getrandbits(64)):
        pass
    return f"{bits:016x}"
