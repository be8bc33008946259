"""Sentry: what a request or Celery task sends to Sentry carries its tracking ID, in its trace (``trackline[sentry]``).

    import sentry_sdk
    from trackline.propagation.sentry import TracklineIntegration

    sentry_sdk.init(dsn="...", integrations=[TracklineIntegration()])

Every event captured in a trackline scope (a request, a Celery task) gets the tag ``tracking_id`` and the scope's
span as its trace context: the ``trace_id``, ``span_id`` and ``parent_span_id`` of the lines it logs. With Sentry's
Flask integration, what Sentry records later in a request (logs, metrics, spans) carries the attribute
``tracking_id``, and Sentry's outgoing ``sentry-trace`` header the request's trace-id; Sentry's own span of the
request (traces on) keeps a trace-id of Sentry's making and links to the request's span. Outside a scope, and
with a Sentry client set up without this integration, nothing changes.

This module imports ``sentry_sdk`` (sentry-sdk 2 or 3); nothing else in trackline does. docs/tracing.md#sentry.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

import sentry_sdk
from sentry_sdk.integrations import Integration
from sentry_sdk.scope import add_global_event_processor
from sentry_sdk.utils import capture_internal_exceptions

from trackline import context
from trackline.propagation import otel
from trackline.tracecontext import TraceContext

if TYPE_CHECKING:
    from sentry_sdk._types import Event, Hint

__all__ = ["TAG", "TracklineIntegration"]

#: The tag (and span attribute) that holds the tracking ID: the name of the log field.
TAG = "tracking_id"


class TracklineIntegration(Integration):
    """``sentry_sdk.init(integrations=[TracklineIntegration()])``: Sentry events and request spans carry the tracking
    ID and the W3C trace of the trackline scope (request or Celery task) they are captured in."""

    identifier = "trackline"

    @staticmethod
    def setup_once() -> None:
        add_global_event_processor(_add_scope)
        try:
            from flask.signals import request_started
        except ImportError:  # no Flask: no Sentry scopes of Flask requests to join
            return
        request_started.connect(_join_request)


def _active() -> bool:
    return sentry_sdk.get_client().get_integration(TracklineIntegration) is not None


def _add_scope(event: Event, hint: Hint) -> Event:
    """The global event processor: the current scope's tracking ID as a tag, its span as the trace context."""
    scope = context.current()
    if scope is not None and _active():
        with capture_internal_exceptions():  # an event is never lost to a failure here
            tags = event.setdefault("tags", {})
            if isinstance(tags, MutableMapping):
                tags.setdefault(TAG, scope.tracking_id)
            if (trace := otel.span_of(scope)) is not None:
                in_trace(event, trace)
    return event


def in_trace(event: Event, trace: TraceContext) -> None:
    """Put ``event`` in ``trace``.

    An error or message event takes the trace's span as its own (its parent: the caller's span, if any): its
    ``span_id`` is that of the log lines of its request. A transaction event (sentry-sdk 2) not in the trace yet
    keeps its span tree and moves it into the trace whole: every span's trace-id, and the root's parent, that of the
    trace's span (both are the server's span of one request). The dynamic sampling context, which becomes the
    envelope's ``trace`` header, follows.
    """
    contexts = event.get("contexts")
    if contexts is None:
        event["contexts"] = contexts = {}
    found = dict(contexts.get("trace") or {})
    if event.get("type") == "transaction":
        if found.get("trace_id") == trace.trace_id:
            return
        spans = event.get("spans")
        for span in spans if isinstance(spans, list) else ():
            span["trace_id"] = trace.trace_id
    else:
        found["span_id"] = trace.span_id
    found["trace_id"] = trace.trace_id
    found.pop("parent_span_id", None)
    if trace.parent_id is not None:
        found["parent_span_id"] = trace.parent_id
    sampling = found.get("dynamic_sampling_context")
    if isinstance(sampling, dict):
        found["dynamic_sampling_context"] = {**sampling, "trace_id": trace.trace_id}
    contexts["trace"] = found


def _join_request(sender: Any, **_: Any) -> None:
    """Flask's ``request_started`` (in the request's trackline scope, and in the Sentry scopes that Sentry's Flask
    integration makes for each request): what Sentry records later in the request joins the request's trace.

    The tracking ID becomes an attribute of Sentry's scope (its spans, logs and metrics carry it), and the trace
    its propagation context: logs and metrics sent to Sentry, and the ``sentry-trace``/``baggage`` headers Sentry
    puts on outgoing calls, carry the request's trace-id (a Sentry SDK behind the call continues it). Sentry's own
    span of the request started earlier, outside ``app.wsgi_app`` where trackline picks the trace, and keeps its
    trace-id: it gets a link to the request's span.
    """
    scope = context.current()
    client = sentry_sdk.get_client()
    if scope is None or client.get_integration(TracklineIntegration) is None or client.get_integration("flask") is None:
        return  # without Sentry's Flask integration there is no Sentry scope of the request's own to change
    with capture_internal_exceptions():  # Sentry's rule: a failure here is logged by Sentry, never the app's
        _join(scope)


def _join(scope: context.Scope) -> None:
    set_attribute = getattr(sentry_sdk.Scope.get_isolation_scope(), "set_attribute", None)  # sentry-sdk >= 2.4x
    if set_attribute is not None:
        set_attribute(TAG, scope.tracking_id)
    trace = scope.trace
    if trace is None:
        return
    sentry_sdk.continue_trace({"sentry-trace": f"{trace.trace_id}-{trace.span_id}"})
    span = sentry_sdk.get_current_span()
    add_link = getattr(span, "add_link", None)  # sentry-sdk 3's spans (2's transactions are events: see in_trace)
    if add_link is not None and getattr(span, "trace_id", None) != trace.trace_id:
        add_link({"trace_id": trace.trace_id, "span_id": trace.span_id})
