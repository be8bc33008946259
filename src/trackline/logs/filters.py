"""The filter that stamps every log record with the current tracking ID."""

from __future__ import annotations

import logging

from trackline.context import get_task, get_tracking_id
from trackline.tracecontext import get_trace


class TrackingIdFilter(logging.Filter):
    """Sets ``record.tracking_id`` (and ``trace_id``/``span_id``/``parent_span_id`` under a W3C trace, and
    ``task_id``/``task_name``/``parent_task_id`` in a Celery task).

    Values the caller passed with ``extra=`` are kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "tracking_id"):
            record.tracking_id = get_tracking_id()
        trace = get_trace()
        if trace is not None and not hasattr(record, "trace_id"):
            record.trace_id = trace.trace_id
            record.span_id = trace.span_id
            record.parent_span_id = trace.parent_id
        task = get_task()
        if task is not None and not hasattr(record, "task_id"):
            record.__dict__.update(task)
        return True
