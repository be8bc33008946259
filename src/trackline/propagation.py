"""Carry the current tracking ID (and trace) into threads, pools, greenlets and outgoing HTTP calls.

A request's ID lives in ContextVars; new threads and greenlets start with an empty context, so work handed
off during a request would log ``tracking_id: null``. These helpers run it in a copy of the caller's context.
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from contextvars import copy_context
from typing import Any, TypeVar

from trackline.context import get_tracking_id
from trackline.policy import DEFAULTS
from trackline.tracecontext import get_trace

T = TypeVar("T")

DEFAULT_HEADER: str = DEFAULTS["TRACKING_ID_HEADER"]


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


def outgoing_headers(headers: Mapping[str, str] | None = None, header: str = DEFAULT_HEADER) -> dict[str, str]:
    """``headers`` plus the current tracking ID and, under a W3C trace, a child ``traceparent`` (+ ``tracestate``)."""
    result = dict(headers or {})
    tracking_id = get_tracking_id()
    if tracking_id is not None:
        result[header] = tracking_id
    trace = get_trace()
    if trace is not None:
        result["traceparent"] = trace.child_traceparent()
        if trace.tracestate:
            result["tracestate"] = trace.tracestate
    return result


def urlopen(request: str | urllib.request.Request, *args: Any, header: str = DEFAULT_HEADER, **kwargs: Any) -> Any:
    """``urllib.request.urlopen`` that sends the current tracking ID and ``traceparent`` along."""
    if isinstance(request, str):
        request = urllib.request.Request(request)
    for name, value in outgoing_headers(header=header).items():
        request.add_header(name, value)
    return urllib.request.urlopen(request, *args, **kwargs)
