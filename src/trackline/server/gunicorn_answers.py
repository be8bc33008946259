"""What gunicorn answers and logs itself about a request carries its tracking ID, like everything else.

gunicorn answers some requests without the app: those it turns away before the app sees them (a malformed
request line or header, a request line or header field over its limits, ...), and with a 500 when an
exception escapes the app before the response's headers went out. It logs a warning or the traceback to
error.log, for some an access line, and sends an HTML page. In trackline's workers those lines and the
answer carry one tracking ID: the request's own (and its W3C trace) when the app had the request (its
exception, or its unread body failing to drain), else a new one; the answer is the envelope
``{"code": 400, "msg": "bad request: <gunicorn's detail>", "data": null}`` with the tracking header and
X-DateTime. The request's ID and trace stay current until gunicorn's ``post_request`` hook, not just until
its response closes, so that gunicorn's traceback of a response cut off mid-body carries them too. Each such
answer has one access line: gunicorn writes one when it had parsed a request, trackline writes the others
(status, ID, size and time, the client's address, null for the request fields it could not parse).
(gunicorn's HTTP/2 support, off by default, answers its errors by other means.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from gunicorn import util
from gunicorn.config import Config
from gunicorn.http.errors import InvalidHeader, InvalidHeaderName

from trackline.context import get_tracking_id, leave_request, let_server_leave_requests, set_tracking_id
from trackline.headers import EXPOSE_HEADERS, echo_headers
from trackline.policy import DEFAULTS, TrackingPolicy
from trackline.tracecontext import TraceContext, get_trace, set_trace

#: The request gunicorn last finished in this greenlet or thread, with its tracking ID and W3C trace.
_finished: ContextVar[tuple[Any, str | None, TraceContext | None] | None] = ContextVar(
    "trackline_finished_request", default=None)

#: The status line and body length of the error page this greenlet or thread sent last.
_error_page: ContextVar[tuple[str, int] | None] = ContextVar("trackline_error_page_sent", default=None)


def track_gunicorn_answers(cfg: Config, app_config: Mapping[str, Any]) -> None:
    """Wrap ``cfg``'s ``post_request`` and ``post_worker_init`` hooks (the operator's, or gunicorn's no-ops) so
    that what each worker answers and logs itself about a request carries its tracking ID."""
    post_request, post_worker_init = cfg.post_request, cfg.post_worker_init

    def post_request_then_leave(worker: Any, req: Any, environ: dict[str, Any] | None, resp: Any) -> None:
        _finished.set((req, get_tracking_id(), get_trace()))  # for handle_error, next if the request failed
        try:
            post_request(worker, req, environ, resp)
        except Exception:
            worker.log.exception("Exception in post_request hook")  # gunicorn's words, while the ID is current
        finally:
            leave_request()

    def answer_then_post_worker_init(worker: Any) -> None:
        let_server_leave_requests()
        _answer_as_trackline(worker, TrackingPolicy.from_config({**DEFAULTS, **app_config}))
        post_worker_init(worker)

    cfg.set("post_request", post_request_then_leave)
    cfg.set("post_worker_init", answer_then_post_worker_init)


def _answer_as_trackline(worker: Any, policy: TrackingPolicy) -> None:
    """Give ``worker``'s own answers an ID for their log lines, and this process's error page the envelope."""
    handle_error = worker.handle_error

    def handle_error_with_id(req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        finished_req, tracking_id, trace = _finished.get() or (None, None, None)
        _finished.set(None)
        known = req is not None and req is finished_req  # the app had this request: keep its ID and trace
        tracking_id = (tracking_id if known else None) or policy.generate()
        set_tracking_id(tracking_id)
        set_trace((trace if known else None) or policy.start_trace(tracking_id))  # every request is in a trace
        started = datetime.now()
        _error_page.set(None)
        try:
            handle_error(req, client, addr, exc)
            if not _gunicorn_logs_access(req, exc) and (page := _error_page.get()) is not None:
                status, length = page
                worker.log.access(SimpleNamespace(status=status, response_length=length), None,
                                  {"REMOTE_ADDR": (addr or ("",))[0] or None}, datetime.now() - started)
        finally:
            leave_request()

    def write_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
        msg = f"{reason.lower()}: {mesg}" if mesg else reason.lower()
        body = json.dumps({"code": status_int, "msg": msg, "data": None}).encode()
        headers = echo_headers(policy.header, str(get_tracking_id()))
        if policy.expose_header:
            headers.append((EXPOSE_HEADERS, policy.header))
        head = [f"HTTP/1.1 {status_int} {reason}", "Connection: close", "Content-Type: application/json",
                f"Content-Length: {len(body)}", *(f"{name}: {value}" for name, value in headers)]
        _error_page.set((f"{status_int} {reason}", len(body)))
        util.write_nonblock(sock, "\r\n".join([*head, "", ""]).encode("latin-1") + body)

    worker.handle_error = handle_error_with_id
    util.write_error = write_error  # gunicorn's only caller is Worker.handle_error; this process is the worker


def _gunicorn_logs_access(req: Any, exc: BaseException) -> bool:
    """Whether ``Worker.handle_error`` writes an access line itself: when it has a request, its own or the one
    an invalid header's exception carries (gunicorn 27, workers/base.py)."""
    return req is not None or (isinstance(exc, (InvalidHeader, InvalidHeaderName)) and exc.req is not None)
