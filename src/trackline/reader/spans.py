"""One request's span tree, built from the log lines ``trackline trace`` finds (``trace.find``'s matches).

The tree rests on the W3C fields every request line has (``trace_id``, ``span_id``, ``parent_span_id``) and on
Celery's task fields (``task_id``, ``parent_task_id``): never on how trackline makes its spans, so that lines
whose spans are OpenTelemetry's draw the same. Times come from what the lines say about them:

- a span with an access line (the app's ``gunicorn.access``, the edge's ``nginx.access``) ends at that line
  and lasts its ``request_time``, the logged value;
- a Celery task ends at Celery's result line (``Task NAME[ID] succeeded in Ns``, ``raised``, ``retry``), and
  lasts the runtime that line gives when it gives one;
- an outgoing call starts at its ``trackline.propagation`` line and ends when the requests it caused ended;
- any other span (a request whose worker died before its access line, a task still running, a span the app
  opened itself) starts at its first line and is *open-ended*: its end is not in the logs.

The edge's line has no span (nginx does not trace): it becomes a span of its own, parent of the app requests of
its tracking ID that ran within it. A span whose parent is not in the logs (the span of a Celery message, an
OpenTelemetry client span) is placed under the span that queued it when the lines tell (``parent_task_id``; an
earlier attempt of the same task; a line naming the task's ID), else under the innermost span of its trace that
it ran within, else it is a root that says its parent is missing. Every such placement says how it was made
(``Span.link``). Lines without a span are kept apart, never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from trackline.reader.trace import Match, Shape, shape

#: What a span is, from its lines.
EDGE, REQUEST, CALL, TASK, SPAN = "edge", "request", "call", "task", "span"
#: How a span came under its parent (``Span.link``).
LINKS = {
    "parent_span_id": "its parent_span_id is the parent's span_id",
    "edge": "an app request of the edge's tracking ID that ran within the edge's request",
    "parent_task_id": "its parent span is not in the logs; its parent_task_id is the parent's task",
    "retry": "its parent span is not in the logs; an earlier attempt of the same task queued it",
    "named": "its parent span is not in the logs; a line of the parent names its task ID",
    "time": "its parent span is not in the logs; the innermost span of its trace that it ran within",
    "root": "no parent: the trace starts here",
    "missing": "its parent span is not in the logs",
}
#: Why a span is open-ended, by kind.
OPEN_REASONS = {
    REQUEST: "no access line: the request did not finish, or its worker was killed",
    CALL: "no request of the callee in the logs",
    TASK: "no Celery result line: the task is still running, or its worker died",
    SPAN: "no access line or task result: still running, or its process was killed",
    EDGE: "its end is not in the logs",
}
_CELERY_RESULT = re.compile(r"Task (?P<name>\S+)\[(?P<id>[^\]]+)\] (?P<what>succeeded|raised|retry|ignored|"
                            r"rejected|INTERNAL ERROR)?")
_ERROR_LEVELS = frozenset({"ERROR", "CRITICAL", "FATAL", "ALERT", "EMERGENCY", "error", "critical", "fatal",
                           "emergency", "alert"})


def _at(record: Any, path: tuple[str, ...]) -> Any:
    value = record
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


@dataclass(frozen=True)
class Names:
    """Where a field preset keeps the fields the tree reads (beside ``trace.Shape``'s): paths into the line."""

    span_id: tuple[str, ...] = ("span_id",)
    custom: tuple[str, ...] = ()  # where custom fields live: parent_span_id, the task's fields, job_id, ...
    method: tuple[str, ...] = ("request_method",)
    path: tuple[str, ...] = ("request_path",)
    query: tuple[str, ...] = ("query_string",)
    status: tuple[str, ...] = ("status_code",)
    duration: tuple[str, ...] = ("request_time",)
    duration_unit: str = "s"  # s | ns | duration (a protobuf Duration string, "0.001681s")
    url: tuple[str, ...] = ("url",)
    service: tuple[str, ...] = ("service",)
    pid: tuple[str, ...] = ("pid",)


#: Each preset's names (``trackline.logs.presets``; docs/log-format.md, "Field presets").
NAMES = {
    "trackline": Names(),
    "ecs": Names(("span", "id"), ("labels",), ("http", "request", "method"), ("url", "path"), ("url", "query"),
                 ("http", "response", "status_code"), ("event", "duration"), "ns", ("url", "full"),
                 ("service", "name"), ("process", "pid")),
    "gcp": Names(("logging.googleapis.com/spanId",), (), ("httpRequest", "requestMethod"),
                 ("httpRequest", "requestUrl"), (), ("httpRequest", "status"), ("httpRequest", "latency"),
                 "duration", ("httpRequest", "requestUrl")),
    "datadog": Names(("span_id",), (), ("http", "method"), ("http", "url"), (),
                     ("http", "status_code"), ("duration",), "ns", ("http", "url")),
    "otel": Names(("span_id",), ("attributes",), ("attributes", "http.request.method"), ("attributes", "url.path"),
                  ("attributes", "url.query"), ("attributes", "http.response.status_code"),
                  ("attributes", "http.server.request.duration"), "s", ("attributes", "url.full"),
                  ("resource", "attributes", "service.name"), ("resource", "attributes", "process.pid")),
}


def _seconds(value: Any, unit: str) -> float | None:
    if isinstance(value, bool):
        return None
    if unit == "duration" and isinstance(value, str) and value.endswith("s"):
        try:
            return float(value[:-1])
        except ValueError:
            return None
    if isinstance(value, int | float):
        return value / 1e9 if unit == "ns" else float(value)
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass
class Line:
    """One log line of the trace, read in its preset."""

    match: Match
    form: Shape
    names: Names

    @property
    def record(self) -> dict[str, Any]:
        return self.match.record

    @property
    def time(self) -> datetime:
        return self.match.timestamp

    def get(self, path: tuple[str, ...]) -> Any:
        return _at(self.record, path)

    def custom(self, key: str) -> Any:
        return _at(self.record, (*self.names.custom, key))

    @property
    def level(self) -> str:
        value = self.get(self.form.level)
        return "-" if value is None else str(value)

    @property
    def logger(self) -> str:
        value = self.get(self.form.logger)
        return "-" if value is None else str(value)

    @property
    def message(self) -> str:
        value = self.record.get(self.form.message)
        return "" if value is None else str(value)

    @property
    def traceback(self) -> str | None:
        value = self.get(self.form.traceback)
        return str(value) if value else None

    @property
    def error(self) -> bool:
        return self.level in _ERROR_LEVELS or self.traceback is not None

    @property
    def span_id(self) -> str | None:
        return _text(self.get(self.names.span_id))

    @property
    def trace_id(self) -> str | None:
        return _text(self.form.trace(self.record))

    @property
    def parent_span_id(self) -> str | None:
        return _text(self.custom("parent_span_id"))

    @property
    def task_id(self) -> str | None:
        return _text(self.custom("task_id"))

    @property
    def status(self) -> Any:
        return self.get(self.names.status)

    @property
    def duration(self) -> float | None:
        return _seconds(self.get(self.names.duration), self.names.duration_unit)

    @property
    def is_access(self) -> bool:
        """The line a server writes when it has answered: a status and a duration."""
        return isinstance(self.status, int) and not isinstance(self.status, bool) and self.duration is not None

    @property
    def target(self) -> str | None:
        """``METHOD /path?query`` of an access line."""
        method, path = self.get(self.names.method), self.get(self.names.path)
        if path is None:
            return None if method is None else str(method)
        query = self.get(self.names.query) if self.names.query else None
        where = f"{path}?{query}" if query else str(path)
        return f"{method} {where}" if method else where

    @property
    def call(self) -> str | None:
        """``METHOD URL`` of an outgoing call's line (``trackline.propagation``): a URL and no status."""
        url = _text(self.get(self.names.url))
        if url is None or self.status is not None or "://" not in url:
            return None
        method = self.get(self.names.method)
        return f"{method} {url}" if method else url

    @property
    def celery_result(self) -> tuple[str, float | None] | None:
        """``(outcome, runtime)`` of Celery's result line of the task (``Task NAME[ID] succeeded in 0.2s``)."""
        task_id = self.task_id
        if task_id is None or not self.logger.startswith("celery"):
            return None
        found = _CELERY_RESULT.match(self.message)
        if not found or found["id"] != task_id or not found["what"]:
            return None
        data = self.custom("data")
        runtime = data.get("runtime") if isinstance(data, dict) else None
        return found["what"], runtime if isinstance(runtime, int | float) else None

    @property
    def service(self) -> str | None:
        value = self.get(self.names.service)
        return str(value) if isinstance(value, str | int) else None


def line_of(match: Match) -> Line:
    form = shape(match.record)
    return Line(match, form, NAMES.get(form.name, NAMES["trackline"]))


@dataclass(eq=False)
class Span:
    """One span of the tree, with its lines and children (both in time order)."""

    key: str  # unique in the tree: "<trace_id>/<span_id>", or "edge-N" for an edge line
    kind: str
    lines: list[Line]
    span_id: str | None = None
    trace_id: str | None = None
    parent_span_id: str | None = None
    tracking_id: str | None = None
    task_id: str | None = None
    parent_task_id: str | None = None
    name: str = ""
    status: str | None = None
    start: datetime = datetime.min
    end: datetime | None = None  # None: open-ended
    duration: float | None = None  # seconds: the logged value where a line gives it
    error: bool = False
    link: str = "root"
    parent: Span | None = None
    children: list[Span] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def last(self) -> datetime:
        """The latest moment the span is known to have been open at."""
        moments = [self.start, *(line.time for line in self.lines)]
        if self.end is not None:
            moments.append(self.end)
        return max(moments)

    @property
    def open(self) -> bool:
        return self.end is None

    @property
    def open_reason(self) -> str | None:
        return OPEN_REASONS[self.kind] if self.open else None

    @property
    def host(self) -> str | None:
        """The ``hostname`` of its lines (shipped to a log host)."""
        for line in self.lines:
            if isinstance(value := line.record.get("hostname"), str):
                return value
        return None

    @property
    def log_dir(self) -> str:
        return str(Path(self.lines[0].match.source).parent)

    @property
    def service(self) -> str:
        """A ``service`` field of its lines (logging.yaml's static fields), else the logger that defines it."""
        for line in self.lines:
            if line.service:
                return line.service
        if self.kind == TASK:
            return "celery"
        defining = next((line for line in self.lines if line.is_access), None)  # a request's, before its calls'
        defining = defining or next((line for line in self.lines if line.call), self.lines[0])
        return defining.logger

    def walk(self, depth: int = 0) -> Iterator[tuple[int, Span]]:
        yield depth, self
        for child in self.children:
            yield from child.walk(depth + 1)


@dataclass
class Tree:
    """The spans of one request (roots in time order), the lines in no span, and the time they cover."""

    query: str
    roots: list[Span]
    unplaced: list[Line]
    start: datetime
    end: datetime

    def spans(self) -> Iterator[tuple[int, Span]]:
        for root in self.roots:
            yield from root.walk()

    @property
    def lines(self) -> int:
        return sum(len(span.lines) for _, span in self.spans()) + len(self.unplaced)

    @property
    def tracking_ids(self) -> list[str]:
        found = [span.tracking_id for _, span in self.spans()]
        found += [line.record.get("tracking_id") for line in self.unplaced]
        return sorted({value for value in found if isinstance(value, str) and value})

    def places(self) -> dict[str, str]:
        """Where each span was logged: its ``hostname`` (a log host's tree), else its log directory, shortened to the
        parts that tell the directories apart (none when there is one directory)."""
        spans = [span for _, span in self.spans()]
        directories = sorted({span.log_dir for span in spans if span.host is None})
        if len(directories) <= 1 and not any(span.host for span in spans):
            return {}
        parts = [Path(directory).parts for directory in directories]
        head = tail = 0
        if len(parts) > 1:
            shortest = min(map(len, parts))
            while head < shortest - 1 and len({part[head] for part in parts}) == 1:
                head += 1
            while tail < shortest - head - 1 and len({part[-1 - tail] for part in parts}) == 1:
                tail += 1
        short = {directory: "/".join(part[head:len(part) - tail]) for directory, part in zip(directories, parts,
                                                                                             strict=True)}
        return {span.key: span.host if span.host is not None else short[span.log_dir] for span in spans}

    @property
    def trace_ids(self) -> list[str]:
        found = [span.trace_id for _, span in self.spans()] + [line.trace_id for line in self.unplaced]
        return sorted({value for value in found if value})


def build(matches: Iterable[Match], query: str = "") -> Tree:
    """The span tree of ``matches`` (``trace.find``'s, any order)."""
    lines = sorted((line_of(match) for match in matches), key=_in_time)
    groups: dict[str, list[Line]] = {}
    edges: list[Span] = []
    unplaced: list[Line] = []
    for line in lines:
        span_id = line.span_id
        if span_id is not None:
            groups.setdefault(f"{line.trace_id or ''}/{span_id}", []).append(line)
        elif line.is_access:  # an access line without a span: the edge's (nginx does not trace)
            edges.append(_span(f"edge-{len(edges) + 1}", [line]))
        else:
            unplaced.append(line)
    spans = [_span(key, group) for key, group in groups.items()]
    _link(spans, edges)
    roots = sorted((span for span in [*spans, *edges] if span.parent is None), key=_order)
    for root in roots:
        _finish(root)
    moments = [line.time for line in lines] + [span.last for span in [*spans, *edges]]
    start = min([span.start for span in [*spans, *edges]] + [line.time for line in lines], default=datetime.min)
    return Tree(query, roots, unplaced, start, max(moments, default=start))


def _in_time(line: Line) -> tuple[datetime, bool, Match]:
    """Time order; within one millisecond an access line after the others (a server writes it when it has
    answered: after every line its request caused, which the file names alone would not say)."""
    return line.time, line.is_access, line.match


def _order(span: Span) -> tuple[datetime, str]:
    return span.start, span.key


def _span(key: str, lines: list[Line]) -> Span:
    """A span from its lines (in time order): kind, name, times, status."""
    first = lines[0]
    span = Span(key, SPAN, lines, span_id=first.span_id, trace_id=first.trace_id,
                parent_span_id=next((line.parent_span_id for line in lines if line.parent_span_id), None),
                tracking_id=next((t for line in lines if isinstance(t := line.record.get("tracking_id"), str)), None),
                task_id=next((line.task_id for line in lines if line.task_id), None),
                parent_task_id=next((t for line in lines if (t := _text(line.custom("parent_task_id")))), None),
                start=first.time)
    access = [line for line in lines if line.is_access]
    result = next((outcome for line in reversed(lines) if (outcome := line.celery_result)), None)
    result_line = next((line for line in reversed(lines) if line.celery_result), None)
    call = next((line for line in lines if line.call), None)
    span.error = any(line.error for line in lines)
    if access:
        done = access[-1]
        span.kind = EDGE if done.logger == "nginx.access" or first.span_id is None else REQUEST
        span.name = done.target or done.message
        span.status = str(done.status)
        span.duration = done.duration
        span.end = done.time
        span.start = done.time - timedelta(seconds=done.duration or 0.0)
        span.error = span.error or done.status >= 500
        for name in ("upstream_addr", "upstream_status", "upstream_response_time", "client_tracking_id"):
            if (value := done.custom(name)) not in (None, ""):
                span.fields[name] = value
    elif span.task_id is not None:
        span.kind = TASK
        span.name = next((t for line in lines if (t := _text(line.custom("task_name")))), "task")
        span.fields["task_id"] = span.task_id
        if result is not None and result_line is not None:
            span.status, span.duration = result
            span.end = result_line.time
            if span.duration is not None:  # the logged runtime, as an access line's request_time
                span.start = result_line.time - timedelta(seconds=span.duration)
            span.error = span.error or span.status in ("raised", "rejected", "INTERNAL ERROR")
    elif call is not None:
        span.kind = CALL
        span.name = call.call or ""
        span.start = call.time
    else:
        span.name = first.message
    if span.parent_task_id:
        span.fields["parent_task_id"] = span.parent_task_id
    return span


def _ancestors(span: Span | None) -> Iterator[Span]:
    while span is not None:
        yield span
        span = span.parent


def _attach(child: Span, parent: Span, link: str) -> bool:
    """Make ``parent`` the parent of ``child``, unless that would make a cycle."""
    if any(ancestor is child for ancestor in _ancestors(parent)):
        return False
    child.parent, child.link = parent, link
    parent.children.append(child)
    return True


def _link(spans: list[Span], edges: list[Span]) -> None:
    by_id = {span.key: span for span in spans}
    tasks: dict[str, list[Span]] = {}
    for span in sorted(spans, key=_order):
        if span.task_id:
            tasks.setdefault(span.task_id, []).append(span)
    unresolved: list[Span] = []
    for span in spans:  # the logged links first
        if span.parent_span_id is None:
            continue
        parent = by_id.get(f"{span.trace_id or ''}/{span.parent_span_id}")
        if parent is None or not _attach(span, parent, "parent_span_id"):
            span.link = "missing"
            unresolved.append(span)
    named = _naming_spans(spans, set(tasks))
    for span in sorted(unresolved, key=_order):  # a task whose message's span is not logged
        candidates: list[tuple[str, Span | None]] = []
        if span.parent_task_id:
            candidates.append(("parent_task_id", _latest_before(tasks.get(span.parent_task_id, []), span)))
        if span.task_id:
            earlier = [other for other in tasks.get(span.task_id, []) if other is not span]
            candidates.append(("retry", _latest_before(earlier, span)))
            candidates.append(("named", _latest_before(named.get(span.task_id, []), span)))
        candidates.append(("time", _innermost_around(spans, span)))
        for link, parent in candidates:
            if parent is not None and _attach(span, parent, link):
                break
    for span in spans:  # the edge is the parent of the app requests it proxied: those it was open around
        if span.parent is not None or span.tracking_id is None:
            continue
        around = [edge for edge in edges if edge.tracking_id == span.tracking_id and edge.end is not None
                  and edge.start - _SLACK <= span.start and (span.end or span.last) <= edge.end + _SLACK]
        if around:
            _attach(span, max(around, key=_order), "edge")  # the innermost: the one that started last


#: Timestamps have milliseconds, cut down: a span may seem to start up to that much before its parent.
_SLACK = timedelta(milliseconds=2)


def _latest_before(candidates: list[Span], span: Span) -> Span | None:
    """The candidate that started last, not after ``span`` (give or take the timestamps' millisecond)."""
    before = [other for other in candidates if other is not span and other.start <= span.start + _SLACK]
    return max(before, key=_order) if before else None


def _innermost_around(spans: list[Span], span: Span) -> Span | None:
    """The span of the same trace that ``span`` ran within (its start and end inside the other's), the innermost
    (the one that started last, then the shorter): where an unlogged parent span, such as an OpenTelemetry client
    span, most likely was."""
    if span.trace_id is None:
        return None
    finish = span.end or span.last
    around = [other for other in spans if other is not span and other.trace_id == span.trace_id
              and other.end is not None and other.start - _SLACK <= span.start and finish <= other.end + _SLACK]
    return max(around, key=lambda other: (other.start, -(other.duration or 0.0), other.key), default=None)


def _naming_spans(spans: list[Span], task_ids: set[str]) -> dict[str, list[Span]]:
    """For each task ID, the spans (other than the task's own) with a line that has it as a field's value (the
    demo's ``job queued`` line has it as ``job_id``)."""
    found: dict[str, list[Span]] = {}
    if not task_ids:
        return found
    for span in spans:
        for line in span.lines:
            custom = _at(line.record, line.names.custom) if line.names.custom else line.record
            if not isinstance(custom, dict):
                continue
            for key, value in custom.items():
                if (isinstance(value, str) and value in task_ids and value != span.task_id
                        and key not in ("task_id", "parent_task_id") and span not in found.get(value, [])):
                    found.setdefault(value, []).append(span)
    return found


def _finish(span: Span) -> None:
    """Sort the children (after finishing them); a call ends when the requests it caused have ended."""
    for child in span.children:
        _finish(child)
    span.children.sort(key=_order)
    if span.kind == CALL and span.children and all(child.end is not None for child in span.children):
        span.end = max(child.end for child in span.children if child.end is not None)
        span.start = min(span.start, *(child.start for child in span.children))
        span.duration = (span.end - span.start).total_seconds()
    if span.end is not None and span.duration is None:  # a task that raised: Celery gives no runtime then
        span.duration = (span.end - span.start).total_seconds()


def _ms(delta: timedelta) -> float:
    return round(delta.total_seconds() * 1000, 3)


def line_json(line: Line, origin: datetime) -> dict[str, Any]:
    """A line as ``--json`` and the HTML page give it: where and when, what it says, and the whole record."""
    found: dict[str, Any] = {"time": line.time.isoformat(timespec="milliseconds"),
                             "offset_ms": _ms(line.time - origin), "level": line.level, "logger": line.logger,
                             "message": line.message, "error": line.error, "source": line.match.source}
    if line.traceback is not None:
        found["traceback"] = line.traceback
    found["record"] = line.record
    return found


def span_json(span: Span, origin: datetime, places: dict[str, str]) -> dict[str, Any]:
    """A span and its subtree as ``--json`` gives it; times as offsets in ms from the tree's start."""
    return {
        "id": span.key, "kind": span.kind, "name": span.name, "span_id": span.span_id,
        "parent_span_id": span.parent_span_id, "trace_id": span.trace_id, "tracking_id": span.tracking_id,
        "link": span.link, "placed": LINKS[span.link], "host": span.host, "log_dir": span.log_dir,
        "where": places.get(span.key), "service": span.service, "status": span.status, "error": span.error,
        "start": span.start.isoformat(timespec="microseconds"), "start_ms": _ms(span.start - origin),
        "end": None if span.end is None else span.end.isoformat(timespec="microseconds"),
        "end_ms": None if span.end is None else _ms(span.end - origin),
        "duration_ms": None if span.duration is None else round(span.duration * 1000, 3),
        "last_ms": _ms(span.last - origin), "open": span.open, "open_reason": span.open_reason,
        "fields": span.fields,
        "lines": [line_json(line, origin) for line in span.lines],
        "children": [span_json(child, origin, places) for child in span.children],
    }


def tree_json(tree: Tree) -> dict[str, Any]:
    """The whole tree as ``--json`` prints it (and the HTML page embeds)."""
    spans = [span for _, span in tree.spans()]
    places = tree.places()
    return {
        "query": tree.query, "tracking_ids": tree.tracking_ids, "trace_ids": tree.trace_ids,
        "start": tree.start.isoformat(timespec="milliseconds"), "end": tree.end.isoformat(timespec="milliseconds"),
        "duration_ms": _ms(tree.end - tree.start),
        "counts": {"spans": len(spans), "open": sum(span.open for span in spans), "lines": tree.lines,
                   "unplaced": len(tree.unplaced), "errors": sum(span.error for span in spans)},
        "spans": [span_json(root, tree.start, places) for root in tree.roots],
        "unplaced": [line_json(line, tree.start) for line in tree.unplaced],
    }
