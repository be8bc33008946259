"""Carry the tracking ID and W3C trace into Celery tasks: ``instrument(celery_app)`` (the ``celery`` extra).

Publishing a task (``delay``, ``apply_async``, a retry, the next step of a chain, a chord's callback) puts
the current tracking ID and a child ``traceparent`` (+ ``tracestate``) into the message headers. A worker
running the task makes them current while it runs, so that every line it logs carries ``tracking_id``,
``trace_id``/``span_id`` and ``task_id``/``task_name``/``parent_task_id``; between tasks they are ``null``.
The message's ID is read with the same policy as an HTTP header: a malformed one is replaced (WARNING), a
task published outside any request gets a new one (INFO, its first line).
"""

from __future__ import annotations

import logging
from typing import Any
from weakref import WeakKeyDictionary

from celery import Celery, Task, signals

from trackline import context
from trackline.policy import DEFAULT_POLICY, TrackingPolicy, rejected_fields, rejected_trace_fields
from trackline.propagation import otel, outgoing_headers
from trackline.tracecontext import TraceContext, parse_traceparent
from trackline.worker import task_lines

log = logging.getLogger("trackline.celery")

#: The message header that carries the tracking ID (``traceparent`` and ``tracestate`` keep their W3C names).
HEADER = "tracking_id"

#: The attribute of a running task's ``request`` that holds the token of its scope until ``task_postrun``.
_TOKEN = "trackline_scope_token"

_policies: WeakKeyDictionary[Celery, TrackingPolicy] = WeakKeyDictionary()


def instrument(celery_app: Celery, policy: TrackingPolicy = DEFAULT_POLICY, task_payloads: bool = False) -> Celery:
    """Connect trackline to Celery's signals for ``celery_app`` (again: replaces the policy); returns the app.

    ``policy`` validates and makes IDs in the worker, and is the one HTTP calls a task makes follow (app.yaml's,
    from ``trackline worker``; the defaults otherwise). Celery's task lines in this process name a task, its ID,
    state and runtime, never its arguments or result, unless ``task_payloads`` (then redacted:
    ``trackline.worker.task_lines``).
    """
    _policies[celery_app] = policy
    task_lines.install(task_payloads)
    signals.before_task_publish.connect(_on_publish, weak=False, dispatch_uid="trackline.celery.publish")
    signals.task_prerun.connect(_on_prerun, weak=False, dispatch_uid="trackline.celery.prerun")
    signals.task_postrun.connect(_on_postrun, weak=False, dispatch_uid="trackline.celery.postrun")
    return celery_app


def _on_publish(headers: dict[str, Any], **_: Any) -> None:
    """``before_task_publish``: the message carries the current ID and a child span of the current trace."""
    headers.update(outgoing_headers(header=HEADER))


def _on_prerun(task: Task, **_: Any) -> None:
    """``task_prerun`` (in the process that runs the task): enter the task's scope (the message's ID and trace)."""
    request = task.request
    if request.is_eager:  # apply() or task_always_eager: it runs in the caller's scope, which keeps its ID
        return
    policy = _policies.get(task.app, DEFAULT_POLICY)
    tracking_id, trace, notes = start_task(request, policy)
    task_fields = {"task_id": request.id, "task_name": task.name, "parent_task_id": request.parent_id}
    setattr(request, _TOKEN, context.enter(tracking_id, trace, policy, task_fields, otel.active()))
    for level, message, extra in notes:
        log.log(level, message, extra=extra)


Note = tuple[int, str, dict[str, Any]]


def start_task(headers: Any, policy: TrackingPolicy) -> tuple[str, TraceContext, list[Note]]:
    """The tracking ID and span of a task whose message has ``headers`` (anything with ``get``), and what to
    log about them once they are current: ``(level, message, extra)`` for a replaced or missing ID.

    Order, as for a request: the valid ``tracking_id`` header, a valid ``traceparent``'s trace-id (if the policy
    takes it), a new ID. The span is a child of the message's ``traceparent``, or the root of a new trace
    (``policy.start_trace``, as for a request).
    """
    incoming_trace = headers.get("traceparent")
    trace = parse_traceparent(incoming_trace, headers.get("tracestate"))  # a non-string one is invalid
    value = headers.get(HEADER)
    tracking_id, rejected = policy.resolve(lambda header: value if header == policy.header else None, trace)
    notes: list[Note] = []
    if rejected is not None:
        notes.append((logging.WARNING, "replaced invalid tracking ID from the task message",
                      rejected_fields(rejected[1])))
    elif value is None and (trace is None or tracking_id != trace.trace_id):
        notes.append((logging.INFO, "new tracking ID: the task was published outside a request", {}))
    if incoming_trace is not None and trace is None:
        notes.append((logging.WARNING, "ignored invalid traceparent from the task message",
                      rejected_trace_fields(incoming_trace)))
    return tracking_id, trace or policy.start_trace(tracking_id), notes


def _on_postrun(task: Task, **_: Any) -> None:
    """``task_postrun``: leave the task's scope; lines logged between tasks say ``null`` again."""
    token = getattr(task.request, _TOKEN, None)
    if token is not None:
        delattr(task.request, _TOKEN)
        context.leave(token)

