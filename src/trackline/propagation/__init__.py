"""Carry the current tracking ID (and trace) into threads, pools, greenlets and outgoing HTTP calls.

A request's ID lives in its scope (``trackline.context``, a ContextVar); new threads and greenlets start with an
empty context, so work handed off during a request would log ``tracking_id: null``. These helpers run it in a
copy of the caller's context. Outgoing calls get the tracking header and a child span of the request's trace
(``traceparent`` with a new parent-id per call, and the ``tracestate``; with OpenTelemetry, its propagator's
headers for its current span): ``outgoing_headers()``, ``urlopen()``, and ``instrument(client)``
(``trackline.propagation.http``) for ``requests`` and ``httpx`` clients. docs/tracing.md has the details.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, MutableMapping
from contextvars import copy_context
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from trackline import context
from trackline.policy import DEFAULT_POLICY
from trackline.propagation import otel
from trackline.tracecontext import TraceContext

if TYPE_CHECKING:  # imported by their callers: the logging filter loads this package in gunicorn's master
    import urllib.request
    from concurrent.futures import Executor, Future

__all__ = [
    "bind_context",
    "instrument",
    "outgoing_call",
    "outgoing_headers",
    "spawn",
    "start_thread",
    "submit",
    "urlopen",
]

T = TypeVar("T")

TRACE_HEADERS = ("traceparent", "tracestate")

log = logging.getLogger("trackline.propagation")


def bind_context(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` bound to a snapshot of the current context; each call runs in its own copy of it."""
    snapshot = copy_context()

    def bound(*args: Any, **kwargs: Any) -> T:
        return snapshot.copy().run(fn, *args, **kwargs)

    return bound


def start_thread(fn: Callable[..., Any], *args: Any, daemon: bool = True, **kwargs: Any) -> threading.Thread:
    """Start ``fn(*args, **kwargs)`` in a new thread (a greenlet under gevent) carrying the tracking ID."""
    thread = threading.Thread(target=bind_context(fn), args=args, kwargs=kwargs, daemon=daemon)
    thread.start()
    return thread


def submit(executor: Executor, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
    """``executor.submit`` whose task carries the tracking ID."""
    return executor.submit(bind_context(fn), *args, **kwargs)


def spawn(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``gevent.spawn`` whose greenlet carries the tracking ID."""
    import gevent  # only callers that use greenlets need gevent imported

    return gevent.spawn(bind_context(fn), *args, **kwargs)


def _child_call(url: str | None, header: str | None) -> tuple[dict[str, str], TraceContext | None]:
    """The headers of one outgoing call to ``url`` and its new child span: nothing outside a request or to a host
    the policy of the request's scope leaves out."""
    scope = context.current()
    if scope is None or (url is not None and not scope.policy.propagates_to(urlsplit(url).hostname)):
        return {}, None
    headers = {header or scope.policy.header: scope.tracking_id}
    if scope.otel and otel.current_span() is not None:  # OpenTelemetry's span and propagator (an instrumented
        otel.inject(headers)  # client's own client span replaces it): one traceparent on the wire
        return headers, None
    if scope.trace is None:  # a scope entered with only a tracking ID
        return headers, None
    child = scope.trace.child()
    headers.update(child.headers())
    return headers, child


def outgoing_headers(headers: Mapping[str, str] | None = None, header: str | None = None, *,
                     url: str | None = None) -> dict[str, str]:
    """``headers`` plus the current tracking ID, a new child ``traceparent`` (its own span-id, each call) and the
    ``tracestate``; just ``headers`` outside a request, or when ``url``'s host is not in TRACKING_ID_PROPAGATE_TO.

    ``header`` defaults to the app's TRACKING_ID_HEADER. The child's span-id is the third field of the
    ``traceparent``: log it with the call (``outgoing_call`` does) to tie the callee's lines to it.
    """
    result = dict(headers or {})
    result.update(_child_call(url, header)[0])
    return result


def outgoing_call(headers: MutableMapping[str, str], method: str, url: str, header: str | None = None) -> None:
    """Set the tracking header and a new child span's ``traceparent``/``tracestate`` in the ``headers`` of one
    outgoing call and log it (INFO ``trackline.propagation``: ``METHOD URL``, with the child's ``span_id``);
    for a host that TRACKING_ID_PROPAGATE_TO leaves out, remove them instead (say, copied by a redirect)."""
    added, child = _child_call(url, header)
    if not added:
        scope = context.current()
        policy = DEFAULT_POLICY if scope is None else scope.policy
        if not policy.propagates_to(urlsplit(url).hostname):
            for name in (header or policy.header, *TRACE_HEADERS):
                headers.pop(name, None)
        return
    headers.update(added)
    where = urlsplit(url)
    # a query string, and user:password@ before the host, may hold secrets (docs/redaction.md)
    shown = where._replace(netloc=where.netloc.rpartition("@")[2], query="", fragment="").geturl()
    fields = child.log_fields() if child is not None else {}
    log.info("%s %s", method, shown, extra={**fields, "request_method": method, "url": shown})


def urlopen(request: str | urllib.request.Request, *args: Any, header: str | None = None, **kwargs: Any) -> Any:
    """``urllib.request.urlopen`` that sends the current tracking ID and a child ``traceparent`` along (to the URL
    given: urllib copies no such header to a redirect's target)."""
    import urllib.request

    if isinstance(request, str):
        request = urllib.request.Request(request)
    headers: dict[str, str] = {}
    outgoing_call(headers, request.get_method(), request.full_url, header)
    for name, value in headers.items():
        request.add_unredirected_header(name, value)
    return urllib.request.urlopen(request, *args, **kwargs)


def instrument(client: T) -> T:
    """``client`` (a ``requests.Session``, ``httpx.Client`` or ``httpx.AsyncClient``) sending the tracking ID and
    a child span with each request: see ``trackline.propagation.http.instrument``."""
    from trackline.propagation.http import instrument as instrument_client

    return instrument_client(client)
