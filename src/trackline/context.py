"""The current request's tracking ID, held in a ContextVar (no Flask import: gunicorn's master loads this)."""

from __future__ import annotations

from contextvars import ContextVar

from trackline.tracecontext import set_trace

#: WSGI environ key holding the effective ID (gunicorn's access logger reads it after Flask is done).
ENVIRON_KEY = "trackline.tracking_id"

_tracking_id: ContextVar[str | None] = ContextVar("trackline_tracking_id", default=None)

#: Fields of the Celery task running in this context (``task_id``, ``task_name``, ``parent_task_id``).
_task: ContextVar[dict[str, str | None] | None] = ContextVar("trackline_task", default=None)


def get_tracking_id() -> str | None:
    """The effective tracking ID of the current request, or ``None`` outside one."""
    return _tracking_id.get()


def set_tracking_id(tracking_id: str | None) -> None:
    """Make ``tracking_id`` current in this context (thread, greenlet or task)."""
    _tracking_id.set(tracking_id)


def get_task() -> dict[str, str | None] | None:
    """The log fields of the Celery task running in this context, or ``None`` outside a task."""
    return _task.get()


def set_task(fields: dict[str, str | None] | None) -> None:
    _task.set(fields)


def leave_request() -> None:
    """Forget the request's ID and W3C trace, so that lines logged between requests say ``null``."""
    set_tracking_id(None)
    set_trace(None)


_server_leaves_requests = False


def let_server_leave_requests() -> None:
    """For a server integration that calls ``leave_request`` itself once it is done with each request (trackline's
    gunicorn hooks): responses then keep the ID and trace until then, instead of forgetting them when they
    close, so that what the server logs about a request after its response (a traceback) carries them."""
    global _server_leaves_requests
    _server_leaves_requests = True


def response_done() -> None:
    """A response has closed (or failed): ``leave_request``, unless the server will."""
    if not _server_leaves_requests:
        leave_request()
