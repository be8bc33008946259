"""The request scope: every per-request value in one place, entered and left as one.

A request (the WSGI middleware), a Celery task (its start) and an answer gunicorn sends itself each ``enter`` a
``Scope`` (tracking ID, W3C trace, the policy that outgoing calls follow, a task's log fields) and keep the
token; ``leave(token)`` restores exactly what was current before, so scopes nest (a task run eagerly inside a
request) and a keep-alive greenlet starts its next request clean. It is one ContextVar: threads and greenlets
started with ``trackline.propagation``'s helpers carry it, and a log record reads it once.

No Flask import: gunicorn's master loads this with the logging filter.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import NamedTuple

from trackline.policy import DEFAULT_POLICY, TrackingPolicy
from trackline.tracecontext import TraceContext


class Scope(NamedTuple):
    """What is current in a request or task: its effective tracking ID, its span (every request has one), the
    policy whose header name and hosts outgoing calls use, a Celery task's ``task_id``/``task_name``/
    ``parent_task_id`` log fields, and whether OpenTelemetry runs (then its current span, where it has one, is
    the span of the scope's lines and calls: ``trackline.propagation.otel``)."""

    tracking_id: str
    trace: TraceContext | None = None
    policy: TrackingPolicy = DEFAULT_POLICY
    task: Mapping[str, str | None] | None = None
    otel: bool = False


_current: ContextVar[Scope | None] = ContextVar("trackline_scope", default=None)


def enter(tracking_id: str, trace: TraceContext | None = None, policy: TrackingPolicy = DEFAULT_POLICY,
          task: Mapping[str, str | None] | None = None, otel: bool = False) -> Token[Scope | None]:
    """Make a new scope current in this context (thread, greenlet or task); the token is what ``leave`` takes."""
    return _current.set(Scope(tracking_id, trace, policy, task, otel))


def follow(trace: TraceContext) -> None:
    """Make ``trace`` the current scope's span from now on (OpenTelemetry's server span, once it started);
    leaving the scope still restores what was current before it."""
    scope = _current.get()
    if scope is not None:
        _current.set(scope._replace(trace=trace))


def leave(token: Token[Scope | None]) -> None:
    """Restore what was current before the ``enter`` that gave ``token`` (outside any request: nothing)."""
    try:
        _current.reset(token)
    except ValueError:  # left from another context than it was entered in (a server closing elsewhere)
        _current.set(None if token.old_value is Token.MISSING else token.old_value)


def current() -> Scope | None:
    """The current scope, or ``None`` outside a request or task."""
    return _current.get()


def get_tracking_id() -> str | None:
    """The effective tracking ID of the current request or task, or ``None`` outside one."""
    scope = _current.get()
    return None if scope is None else scope.tracking_id


def get_trace() -> TraceContext | None:
    """The current request's or task's span (every request has one), or ``None`` outside one."""
    scope = _current.get()
    return None if scope is None else scope.trace
