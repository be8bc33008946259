"""Celery's own task lines without the task's payload: its name, ID, state and runtime, never its arguments or result.

Celery logs a task's life on two loggers, passing a dict both as the record's argument and as its ``data``
field: ``celery.worker.strategy`` (``Task NAME[ID] received``, with the message's ``args``/``kwargs`` reprs) and
``celery.app.trace`` (``succeeded in Ns: RESULT`` with ``return_value``, ``args`` and ``kwargs``; ``raised ...``
with ``args`` and ``kwargs``; ``retry: ...``). ``TaskLines``, a filter on those two loggers, rewrites each: the
message loses the result, ``data`` keeps ``id``, ``name``, ``runtime`` (which ``trackline trace --waterfall``
reads), the exception and the like, loses the payload, and gains ``state`` (Celery's name for it: ``RECEIVED``,
``SUCCESS``, ``FAILURE``, ``RETRY``, ``IGNORED``, ``REJECTED``).

With ``payloads`` on (worker.yaml's ``task_payloads``), the succeeded, failed and retry lines carry the running
task's ``args`` and ``kwargs`` (and ``result`` when it succeeded) as values, each mapping key named in app.yaml's
redaction lists ``[REDACTED]`` (``trackline.redaction``), and the line cap cuts what is too long. The received
line never carries them: Celery has only their ``repr`` strings there, which no key can be found in.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from celery import current_task, signals
from celery.app import trace

from trackline import redaction

#: The loggers Celery writes a task's received, succeeded, failed and retry lines with.
LOGGERS = ("celery.worker.strategy", "celery.app.trace")
#: The state each of Celery's task line formats reports.
STATES = {trace.LOG_RECEIVED: "RECEIVED", trace.LOG_SUCCESS: "SUCCESS", trace.LOG_FAILURE: "FAILURE",
          trace.LOG_INTERNAL_ERROR: "FAILURE", trace.LOG_RETRY: "RETRY", trace.LOG_IGNORED: "IGNORED",
          trace.LOG_REJECTED: "REJECTED"}
#: Celery's succeeded line without its ``: RESULT`` ending.
SUCCESS = trace.LOG_SUCCESS.rsplit(":", 1)[0]
#: The keys of Celery's line data that hold the payload.
PAYLOAD = frozenset({"args", "kwargs", "return_value"})
#: Where a running task's result waits from ``task_success`` until Celery logs its succeeded line.
_RESULT = "trackline_result"


class TaskLines(logging.Filter):
    """Rewrites Celery's task lines as the module says; ``payloads`` adds the running task's, redacted."""

    def __init__(self, payloads: bool = False) -> None:
        super().__init__()
        self.payloads = payloads

    def filter(self, record: logging.LogRecord) -> bool:
        state = STATES.get(record.msg) if isinstance(record.msg, str) else None
        if state is not None and isinstance(record.args, Mapping):
            data = {key: value for key, value in record.args.items() if key not in PAYLOAD}
            data["state"] = state
            if self.payloads and state != "RECEIVED":
                data.update(_payload(state))
            if state == "SUCCESS":
                record.msg = SUCCESS
            record.args = data  # a mapping, as Celery gave it: its format reads %(name)s
            record.data = data
        elif isinstance(record.args, tuple) and any(isinstance(arg, Mapping) for arg in record.args):
            # a request's info(), as in Celery's "Couldn't convert ETA" line: its repr without the payload
            record.args = tuple({key: value for key, value in arg.items() if key not in PAYLOAD}
                                if isinstance(arg, Mapping) else arg for arg in record.args)
        return True


def install(payloads: bool) -> None:
    """Put ``TaskLines`` on Celery's task loggers of this process (again: replaces it)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in [made for made in logger.filters if isinstance(made, TaskLines)]:
            logger.removeFilter(old)
        logger.addFilter(TaskLines(payloads))
    if payloads:
        signals.task_success.connect(_keep_result, weak=False, dispatch_uid="trackline.task_lines.result")
    else:
        signals.task_success.disconnect(dispatch_uid="trackline.task_lines.result")


def _keep_result(sender: Any = None, result: Any = None, **_: Any) -> None:
    """``task_success``, sent just before Celery's succeeded line: the result, for that line."""
    if sender is not None:
        setattr(sender.request, _RESULT, result)


def _payload(state: str) -> dict[str, Any]:
    """The running task's arguments (and result, once it succeeded) with the redaction lists applied."""
    task = current_task
    request = getattr(task, "request", None) if task else None
    if request is None:
        return {}
    found = {"args": list(request.args or ()), "kwargs": dict(request.kwargs or {})}
    if state == "SUCCESS" and hasattr(request, _RESULT):
        found["result"] = getattr(request, _RESULT)
    return _redacted(found, redaction.active())


def _redacted(value: Any, redactor: redaction.Redactor) -> Any:
    """``value`` with every mapping's listed keys ``[REDACTED]`` (URL and header fields redacted as in extras)."""
    if isinstance(value, Mapping):
        return {key: _redacted(redactor.field(str(key), item), redactor) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item, redactor) for item in value]
    return value
