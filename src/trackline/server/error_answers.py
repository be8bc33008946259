"""What gunicorn answers and logs itself about a request carries its tracking ID, like everything else.

gunicorn answers some requests without the app: those it turns away before the app sees them (a malformed
request line or header, a request line or header field over its limits, ...), and with a 500 when an
exception escapes the app before the response's headers went out. It logs a warning or the traceback to
error.log, for some an access line, and sends an HTML page. In trackline's workers those lines and the
answer carry one tracking ID: the request's own (and its W3C trace) when the app had the request (its
exception, or its unread body failing to drain), else a new one; the answer follows the served app: the
envelope ``{"code": 400, "msg": "bad request: <gunicorn's detail>", "data": null}`` for the demo and apps with
``TRACKLINE_ERROR_ENVELOPE: true``, else a short plain-text page (``400 Bad Request``, gunicorn's detail, the
tracking ID), both with the tracking header and X-DateTime. gunicorn's detail is said once (its page quotes
the exception's text after a heading that the text repeats: ``Invalid HTTP Version 'Invalid HTTP Version:
...'``). The request's scope is left in gunicorn's ``post_request`` hook (server/hooks.py), not when its
response closes, so that gunicorn's traceback of a response cut off mid-body carries its ID too. Each such
answer has one access line: gunicorn writes one when it had parsed a request, trackline writes the others
(status, ID, size and time, the client's address, null for the request fields it could not parse).
(gunicorn's HTTP/2 support, off by default, answers its errors by other means.)
"""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any

from gunicorn import util
from gunicorn.http.errors import (
    InvalidHeader,
    InvalidHeaderName,
    InvalidHTTPVersion,
    InvalidProxyLine,
    InvalidRequestLine,
    InvalidRequestMethod,
)

from trackline import context
from trackline.envelope import PLAIN_TYPE, envelope, plain_page
from trackline.policy import TrackingPolicy
from trackline.propagation import otel
from trackline.wsgi import EXPOSE_HEADERS, SCOPE_TOKEN_KEY, echo_headers

#: The attribute of a gunicorn request that holds the scope it had when ``post_request`` left it: gunicorn's
#: ``handle_error``, next if the request failed, answers in it.
SCOPE_ATTRIBUTE = "trackline_scope"

#: The status line and body length of the error page sent on each client socket, until ``handle_error`` ends.
_pages_sent: dict[Any, tuple[str, int]] = {}

#: gunicorn's detail of the exception being answered on each client socket, when its page would say it twice.
_details: dict[Any, str] = {}

#: Exceptions whose text gunicorn's page quotes after a heading the text already starts with (gunicorn 27).
_SAID_TWICE = (InvalidRequestLine, InvalidRequestMethod, InvalidHTTPVersion, InvalidProxyLine)


def leave_request_scope(req: Any, environ: dict[str, Any]) -> None:
    """``post_request``: leave the scope the tracking middleware entered for ``req`` (if it had the request),
    keeping it on ``req`` for ``handle_error``."""
    token = environ.get(SCOPE_TOKEN_KEY)
    if token is None:
        return
    if req is not None:
        setattr(req, SCOPE_ATTRIBUTE, context.current())
    context.leave(token)


def answer_as_trackline(worker: Any, policy: TrackingPolicy, as_envelope: bool = True) -> None:
    """Give ``worker``'s own answers an ID for their log lines, and this process's error page the envelope (or,
    not ``as_envelope``, the plain-text page)."""
    handle_error = worker.handle_error

    def handle_error_with_id(req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        had: context.Scope | None = getattr(req, SCOPE_ATTRIBUTE, None)  # the app had this request: its ID
        tracking_id = had.tracking_id if had is not None else policy.generate()
        trace = had.trace if had is not None and had.trace is not None else policy.start_trace(tracking_id)
        token = context.enter(tracking_id, trace, policy, otel=otel.active())
        started = datetime.now()
        if isinstance(exc, _SAID_TWICE):
            _details[client] = str(exc)
        try:
            handle_error(req, client, addr, exc)
            if not _gunicorn_logs_access(req, exc) and (page := _pages_sent.get(client)) is not None:
                status, length = page
                worker.log.access(SimpleNamespace(status=status, response_length=length), None,
                                  {"REMOTE_ADDR": (addr or ("",))[0] or None}, datetime.now() - started)
        finally:
            _pages_sent.pop(client, None)
            _details.pop(client, None)
            context.leave(token)

    def write_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
        mesg = _details.get(sock, mesg)
        tracking_id = str(context.get_tracking_id())
        if as_envelope:
            body = envelope(status_int, f"{reason.lower()}: {mesg}" if mesg else reason.lower())
            content_type = "application/json"
        else:
            body, content_type = plain_page(status_int, reason, mesg, tracking_id), PLAIN_TYPE
        headers = echo_headers(policy.header, tracking_id)
        if policy.expose_header:
            headers.append((EXPOSE_HEADERS, policy.header))
        head = [f"HTTP/1.1 {status_int} {reason}", "Connection: close", f"Content-Type: {content_type}",
                f"Content-Length: {len(body)}", *(f"{name}: {value}" for name, value in headers)]
        _pages_sent[sock] = (f"{status_int} {reason}", len(body))
        util.write_nonblock(sock, "\r\n".join([*head, "", ""]).encode("latin-1") + body)

    worker.handle_error = handle_error_with_id
    util.write_error = write_error  # gunicorn's only caller is Worker.handle_error; this process is the worker


def _gunicorn_logs_access(req: Any, exc: BaseException) -> bool:
    """Whether ``Worker.handle_error`` writes an access line itself: when it has a request, its own or the one
    an invalid header's exception carries (gunicorn 27, workers/base.py)."""
    return req is not None or (isinstance(exc, (InvalidHeader, InvalidHeaderName)) and exc.req is not None)
