"""The tracking-ID policy: which headers carry it, what a valid one is, how a new one is made (no Flask)."""

from __future__ import annotations

import fnmatch
import pkgutil
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from random import getrandbits
from typing import Any

from trackline.tracecontext import TraceContext, new_span_id, new_trace_flags, random_trace_id, trace_id_of

#: How much of a rejected header value is kept in the log.
REJECTED_KEEP = 64

#: An HTTP field name (RFC 9110 token) without "_": gunicorn drops request headers with one (header_map).
_HEADER_NAME = re.compile(r"[!#$%&'*+.^`|~0-9A-Za-z-]+")

DEFAULTS: dict[str, Any] = {
    "TRACKING_ID_HEADER": "X-Tracking-ID",
    "TRACKING_ID_ALIASES": (),
    "TRACKING_ID_MAX_LENGTH": 128,
    "TRACKING_ID_CHARACTERS": r"A-Za-z0-9._:@/+=-",
    "TRACKING_ID_GENERATOR": "uuid.uuid4",
    "TRACKING_ID_FROM_TRACEPARENT": True,
    "TRACKING_ID_EXPOSE_HEADER": True,
    "TRACKING_ID_PROPAGATE_TO": ("*",),
    "TRACE_SAMPLED": True,
}

#: Alias headers whose ID is one field of their value: AWS load balancers' ``Root=1-67891233-abcdef...;...``.
_ID_FIELDS = {"x-amzn-trace-id": re.compile(r"(?:^|;)\s*Root=([^;]*)")}


#: The bits a UUID4 fixes: version 4 (bits 76-79) and variant 10 (bits 62-63), RFC 9562.
_UUID4_CLEAR = ~((0xF << 76) | (0x3 << 62))
_UUID4_SET = (0x4 << 76) | (0x2 << 62)


def random_uuid4() -> str:
    """What ``str(uuid.uuid4())`` returns (122 random bits, RFC 9562 version 4), without building a ``UUID`` and
    without a system call: the bits come from ``random.getrandbits``, as OpenTelemetry's SDK draws its trace and
    span IDs (the random module reseeds itself in each forked worker). A tracking ID names a request; it is
    no secret and no token."""
    digits = f"{getrandbits(128) & _UUID4_CLEAR | _UUID4_SET:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def _generator(spec: str | Callable[[], Any]) -> Callable[[], str]:
    """The ID generator named by ``TRACKING_ID_GENERATOR``; the default ``uuid.uuid4`` is ``random_uuid4``."""
    make = pkgutil.resolve_name(spec) if isinstance(spec, str) else spec
    if make is uuid.uuid4:
        return random_uuid4
    return lambda: str(make())


@dataclass(frozen=True)
class TrackingPolicy:
    """Which headers carry the ID, what a valid one looks like, and how a new one is made."""

    header: str
    aliases: Sequence[str]
    pattern: re.Pattern[str]
    generate: Callable[[], str]
    from_traceparent: bool
    expose_header: bool
    propagate_to: re.Pattern[str] | None
    sampled: bool
    #: The header and its aliases, in the order they are read; the flags of a trace the policy starts.
    headers: tuple[str, ...] = field(init=False)
    trace_flags: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", (self.header, *self.aliases))  # once, not per request
        object.__setattr__(self, "trace_flags", new_trace_flags(self.sampled))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TrackingPolicy:
        """The policy of ``config``'s ``TRACKING_ID_*`` and ``TRACE_*`` keys (``DEFAULTS`` for those it lacks);
        the one place a policy is built. A bad value raises ``ValueError("KEY: why")``."""
        values = {key: config.get(key, default) for key, default in DEFAULTS.items()}

        def checked(key: str, parse: Callable[[Any], Any]) -> Any:
            try:
                return parse(values[key])
            except Exception as exc:  # int(), re.compile() and imports raise many kinds
                raise ValueError(f"{key}: {exc}") from None

        max_length = checked("TRACKING_ID_MAX_LENGTH", _at_least_one)
        return cls(
            header=checked("TRACKING_ID_HEADER", _header_name),
            aliases=checked("TRACKING_ID_ALIASES", _header_names),
            pattern=checked("TRACKING_ID_CHARACTERS", lambda chars: re.compile(f"[{chars}]{{1,{max_length}}}")),
            generate=checked("TRACKING_ID_GENERATOR", _generator),
            from_traceparent=checked("TRACKING_ID_FROM_TRACEPARENT", _flag),
            expose_header=checked("TRACKING_ID_EXPOSE_HEADER", _flag),
            propagate_to=checked("TRACKING_ID_PROPAGATE_TO", _host_pattern),
            sampled=checked("TRACE_SAMPLED", _flag),
        )

    def resolve(self, header_value: Callable[[str], str | None],
                trace: TraceContext | None) -> tuple[str, tuple[str, str] | None]:
        """The effective ID, and ``(header, value)`` of a rejected incoming value if one was replaced.

        ``header_value(name)`` is the request's (or message's) value of the header ``name``, or ``None``.
        Order: the header, its aliases, the trace-id of a valid ``traceparent`` (if enabled), a new ID.
        An ``X-Amzn-Trace-Id`` header gives the value of its ``Root=`` field. A value that is not a string is
        invalid whatever it holds (its ``repr`` is what the rejected value's log fields show).
        """
        rejected = None
        for header in self.headers:
            value: Any = header_value(header)
            if value is None:
                continue
            if not isinstance(value, str):
                rejected = rejected or (header, repr(value))
                continue
            candidate = _id_in(header, value)
            if candidate is not None and self.pattern.fullmatch(candidate):
                return candidate, rejected
            rejected = rejected or (header, value)
        if trace is not None and self.from_traceparent:
            return trace.trace_id, rejected
        return self.generate(), rejected

    def start_trace(self, tracking_id: str) -> TraceContext:
        """The trace a request without a valid ``traceparent`` starts: a UUID4 tracking ID's 32 hex digits are
        its trace-id (so one value finds both), else a random one; sampled per ``TRACE_SAMPLED``."""
        return TraceContext(trace_id_of(tracking_id) or random_trace_id(), new_span_id(), None, self.trace_flags)

    def propagates_to(self, host: str | None) -> bool:
        """Whether a call to ``host`` gets the tracking header and the trace (``TRACKING_ID_PROPAGATE_TO``)."""
        if self.propagate_to is None:
            return True
        return host is not None and self.propagate_to.fullmatch(host.lower()) is not None


def _id_in(header: str, value: str) -> str | None:
    """The ID a header's value carries: all of it, or for ``X-Amzn-Trace-Id`` its ``Root=`` field (if any)."""
    field = _ID_FIELDS.get(header.lower())
    if field is None:
        return value
    found = field.search(value)
    return found.group(1) if found else None


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {value!r}")
    return value


def _at_least_one(value: Any) -> int:
    if int(value) < 1:
        raise ValueError("must be at least 1")
    return int(value)


def _header_name(header: Any) -> str:
    if not _is_header_name(header):
        raise ValueError(f"must be a header name, not {header!r}{_underscore_hint(header)}")
    return str(header)


def _header_names(aliases: Any) -> tuple[str, ...]:
    if isinstance(aliases, str) or not all(_is_header_name(alias) for alias in aliases):
        raise ValueError(f"must be a list of header names, not {aliases!r}{_underscore_hint(aliases)}")
    return tuple(aliases)


def _host_pattern(hosts: Any) -> re.Pattern[str] | None:
    """One regex for shell-style host patterns (``*.example.com``, ``10.0.*``); ``None`` when ``*`` allows all."""
    if isinstance(hosts, str) or not all(isinstance(host, str) and host for host in hosts):
        raise ValueError(f"must be a list of host patterns such as '*.internal.example.com', not {hosts!r}")
    if "*" in hosts:
        return None
    return re.compile("|".join(fnmatch.translate(host.lower()) for host in hosts))


def _is_header_name(name: Any) -> bool:
    """A header name a client can send to trackline and get back: see ``_HEADER_NAME``."""
    return isinstance(name, str) and _HEADER_NAME.fullmatch(name) is not None


def _underscore_hint(value: Any) -> str:
    return " (gunicorn drops request headers whose name has '_')" if "_" in str(value) else ""


def rejected_fields(value: str) -> dict[str, Any]:
    """The log fields of a rejected incoming ID (a request's header, a task message's): excerpt and length."""
    return {"rejected_tracking_id": safe_excerpt(value), "rejected_length": len(value)}


def rejected_trace_fields(value: Any) -> dict[str, Any]:
    """The log fields of an invalid incoming ``traceparent``: its length, or its type when it is no string."""
    return {"rejected_length": len(value)} if isinstance(value, str) else {"rejected_type": type(value).__name__}


def safe_excerpt(value: str) -> str:
    """A rejected header value made harmless for any log reader: truncated, escaped to printable ASCII."""
    return value[:REJECTED_KEEP].encode("unicode_escape").decode("ascii")


#: The policy of the defaults: outgoing calls outside any scope, and Celery apps instrumented without one.
DEFAULT_POLICY = TrackingPolicy.from_config(DEFAULTS)
