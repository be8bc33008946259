"""The filter that stamps every log record with the current request's (or task's) tracking ID and W3C trace."""

from __future__ import annotations

import logging

from trackline import redaction
from trackline.context import current
from trackline.propagation.otel import span_of


class TrackingIdFilter(logging.Filter):
    """Sets ``record.tracking_id`` (``None`` outside a request) and, in a request (every request is in a trace),
    ``trace_id``, ``span_id`` and ``trace_flags`` (plus ``parent_span_id`` when the span has a parent), and in a
    Celery task ``task_id``, ``task_name`` and ``parent_task_id``. When OpenTelemetry runs, the span is the one
    it has current when the line is written.

    Values the caller passed with ``extra=`` are kept: a record with its own ``span_id`` (the line of an
    outgoing call, in the call's child span) keeps its trace fields. But ``extra`` fields named like a query
    parameter or header of app.yaml's redaction lists are logged as ``[REDACTED]``, and those named like a URL,
    a query string or headers have those values redacted, as have ``%s`` arguments holding a ``?`` (a URL), by
    ``trackline.redaction``. Text written into the message itself is not looked at.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        attributes = record.__dict__  # read and written as a dict: cheaper than hasattr and setattr
        redactor = redaction.active()
        if not attributes.keys().isdisjoint(redactor.field_names):
            redactor.record(attributes)
        if record.args and isinstance(record.args, tuple):
            record.args = redactor.args(record.args)
        scope = current()
        if scope is None:
            attributes.setdefault("tracking_id", None)
            return True
        attributes.setdefault("tracking_id", scope.tracking_id)
        trace = span_of(scope)
        if trace is not None and "span_id" not in attributes:
            attributes["trace_id"] = trace.trace_id
            attributes["span_id"] = trace.span_id
            attributes["trace_flags"] = trace.flags
            if trace.parent_id is not None:
                attributes["parent_span_id"] = trace.parent_id
        if scope.task is not None and "task_id" not in attributes:
            attributes.update(scope.task)
        return True
