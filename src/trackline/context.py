"""The current request's tracking ID, held in a ContextVar (no Flask import: gunicorn's master loads this)."""

from __future__ import annotations

from contextvars import ContextVar

from trackline.tracecontext import set_trace

#: WSGI environ key holding the effective ID (gunicorn's access logger reads it after Flask is done).
ENVIRON_KEY = "trackline.tracking_id"

_tracking_id: ContextVar[str | None] = ContextVar("trackline_tracking_id", default=None)


def get_tracking_id() -> str | None:
    """The effective tracking ID of the current request, or ``None`` outside one."""
    return _tracking_id.get()


def set_tracking_id(tracking_id: str | None) -> None:
    """Make ``tracking_id`` current in this context (thread, greenlet or task)."""
    _tracking_id.set(tracking_id)


def leave_request() -> None:
    """Forget the request's ID and W3C trace, so that lines logged between requests say ``null``."""
    set_tracking_id(None)
    set_trace(None)
