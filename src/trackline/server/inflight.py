"""The requests in flight on this worker, so that it can name them: slow ones while they run, and the ones it
holds when it dies (a ``timeout`` abort, a stop past ``graceful_timeout``). docs/forensics.md is the user's page.

Each request is registered by trackline's wrapper around the worker's app (``server/hooks.py``) before the app
sees it, and dropped in ``post_request``: its environ, its start (monotonic) and the greenlet serving it. What
is logged about one is logged in its own scope (read from the greenlet's context: ``gr_context``), so each line
carries its tracking ID and trace, with the access log's names ``request_method``, ``request_path`` and
``request_time`` (seconds so far), and ``stack_info`` (Python's name for a stack as one string) where it was.

- ``check_slow`` (the worker's heartbeat, about once a second): one WARNING per request that passed
  ``TRACKLINE_SLOW_REQUEST_SECONDS``. The access line of any request that took that long says ``"slow": true``.
- ``report_abort`` (gunicorn's ``worker_abort``: the master's ABRT after ``timeout`` silent seconds): the
  signal handler runs in the greenlet that held the CPU, so its stack is where the loop was stuck. That
  request is logged at ERROR with that stack, and gets an access line with status 504 and ``"completed":
  false``; gunicorn's ``sys.exit`` then ends it. If the one stuck was no request (the hub, a background job)
  the process exits at once, so every request in flight is logged that way, each with the stack it waits in.
- ``report_abandoned`` (the heartbeat of a stopping worker, ``STOP_MARGIN_SECONDS`` before
  ``graceful_timeout``): each request still running is logged the same way, as one the worker is about to
  give up (gunicorn's own kill of its greenlets, or the master's SIGKILL, both leave no line).

No gevent import (greenlet, gevent's dependency, patches nothing): ``access.py`` reads the threshold in the
master too.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from datetime import timedelta
from types import FrameType, SimpleNamespace
from typing import Any

from greenlet import getcurrent  # gevent's dependency; a thread's main greenlet in other workers

from trackline import context
from trackline.wsgi import TRACKING_ID_KEY

#: The environ key set on a request whose access line says it never completed: gunicorn's own, if it writes one
#: after all, is dropped (one access line per request).
NEVER_COMPLETED_KEY = "trackline.never_completed"

#: What the access line of a request that never completed says: the edge's answer when its upstream gives up.
NEVER_COMPLETED_STATUS = "504 Gateway Timeout"

#: ``TRACKLINE_SLOW_REQUEST_SECONDS`` of the app this worker serves (``None``: no slow requests); set by the hooks.
slow_seconds: float | None = None


class InFlight:
    """One request this worker is serving."""

    __slots__ = ("environ", "greenlet", "reported", "slow", "started")

    def __init__(self, environ: dict[str, Any], started: float, greenlet: Any) -> None:
        self.environ = environ
        self.started = started
        self.greenlet = greenlet
        self.slow = False  # its slow WARNING is out
        self.reported = False  # logged as never completed

    def scope(self) -> context.Scope | None:
        """The request's scope, as its own greenlet sees it."""
        if self.greenlet is getcurrent():
            scope = context.current()
        else:
            ctx = getattr(self.greenlet, "gr_context", None)
            scope = ctx.get(context._current) if ctx is not None else None
        if scope is None and (tracking_id := self.environ.get(TRACKING_ID_KEY)):
            scope = context.Scope(tracking_id)
        return scope

    def fields(self, now: float) -> dict[str, Any]:
        return {"request_method": self.environ.get("REQUEST_METHOD"), "request_path": self.environ.get("PATH_INFO"),
                "request_time": round(now - self.started, 3)}

    def what(self) -> str:
        return f"{self.environ.get('REQUEST_METHOD')} {self.environ.get('PATH_INFO')}"


_requests: dict[int, InFlight] = {}


def start(environ: dict[str, Any]) -> None:
    """Register the request of ``environ``, served by the current greenlet."""
    _requests[id(environ)] = InFlight(environ, time.monotonic(), getcurrent())


def finish(environ: dict[str, Any]) -> None:
    """``post_request``: the request is done (answered, or ended by an exception)."""
    _requests.pop(id(environ), None)


def in_flight() -> list[InFlight]:
    return list(_requests.values())


def is_slow(request_time: timedelta) -> bool:
    """Whether a request that took ``request_time`` passed ``TRACKLINE_SLOW_REQUEST_SECONDS``."""
    return slow_seconds is not None and request_time.total_seconds() >= slow_seconds


def check_slow(log: logging.Logger, now: float | None = None) -> None:
    """One WARNING for each request that passed the threshold since the last check, in its scope."""
    if slow_seconds is None:
        return
    now = time.monotonic() if now is None else now
    for request in in_flight():
        if not request.slow and now - request.started >= slow_seconds:
            request.slow = True
            fields = request.fields(now)
            _log(log, logging.WARNING, request.scope(),
                 f"slow request: {request.what()} still running after {fields['request_time']:.1f} s "
                 f"(TRACKLINE_SLOW_REQUEST_SECONDS: {slow_seconds:g})", fields)


def report_abort(worker: Any, timeout: float, stuck: FrameType | None) -> None:
    """``worker_abort``: name the request that held the loop (``stuck``: where the signal found it), or, if none
    did, every request, which the process's exit ends now."""
    now, current = time.monotonic(), getcurrent()
    holder = next((r for r in in_flight() if r.greenlet is current), None)
    if holder is not None:
        _never_completed(worker, holder, now, logging.ERROR,
                         f"request blocked its worker past the timeout ({timeout:g} s): {holder.what()}; "
                         "the worker is aborted", _stack(stuck), blocked_worker=True)
        return
    for request in in_flight():
        _never_completed(worker, request, now, logging.ERROR,
                         f"request in flight on a worker aborted after its timeout ({timeout:g} s): "
                         f"{request.what()}", _stack(getattr(request.greenlet, "gr_frame", None)))


def report_abandoned(worker: Any, graceful_timeout: float) -> None:
    """A stopping worker about to reach ``graceful_timeout``: each request still running, with where it waits."""
    now = time.monotonic()
    for request in in_flight():
        if not request.reported:
            _never_completed(worker, request, now, logging.ERROR,
                             f"request still running at the stopping worker's graceful_timeout "
                             f"({graceful_timeout:g} s): {request.what()}; the worker gives it up",
                             _stack(getattr(request.greenlet, "gr_frame", None)))


def _never_completed(worker: Any, request: InFlight, now: float, level: int, message: str, stack: str | None,
                     **more: Any) -> None:
    """The ERROR line and the 504 access line of a request that will never complete."""
    request.reported = True
    request.environ[NEVER_COMPLETED_KEY] = True
    scope = request.scope()
    _log(worker.log.error_log, level, scope, message, {**request.fields(now), **more}, stack)
    resp = SimpleNamespace(status=NEVER_COMPLETED_STATUS, response_length=0, completed=False)
    token = context.enter(*scope) if scope is not None else None
    try:
        worker.log.access(resp, None, request.environ, timedelta(seconds=now - request.started))
    finally:
        if token is not None:
            context.leave(token)


def _stack(frame: FrameType | None) -> str | None:
    """A stack as one string, innermost call last (as logging's ``stack_info``)."""
    if frame is None:
        return None
    return "Stack (most recent call last):\n" + "".join(traceback.format_stack(frame)).rstrip("\n")


def _log(log: logging.Logger, level: int, scope: context.Scope | None, message: str, fields: dict[str, Any],
         stack: str | None = None) -> None:
    """One record in ``scope`` (the request's tracking ID and trace), with ``fields`` and ``stack_info``."""
    if not log.isEnabledFor(level):
        return
    token = context.enter(*scope) if scope is not None else None
    try:
        caller = sys._getframe(1)  # loc and func: the report that logs it (no stack walk of logging's own)
        record = log.makeRecord(log.name, level, __file__, caller.f_lineno, message, (), None, caller.f_code.co_name,
                                fields, stack)
        log.handle(record)
    finally:
        if token is not None:
            context.leave(token)

