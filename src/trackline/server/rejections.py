"""Requests gunicorn answers itself get a tracking ID and the JSON envelope, like every other response.

gunicorn turns some requests away before the app sees them (a malformed request line or header, a request
line or header field over its limits, ...), and answers 500 itself when an exception escapes the app (e.g.
from a streamed body, before its headers went out). It logs a warning or the traceback to error.log, for
some an access line, and sends an HTML page. In trackline's workers these lines and the answer carry one
tracking ID: the failed request's own, or a new one for a request the app never saw; the answer is the
envelope ``{"code": 400, "msg": "bad request: <gunicorn's detail>", "data": null}`` with the tracking
header and X-DateTime. (gunicorn's HTTP/2 support, off by default, answers its errors by other means.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from gunicorn import util
from gunicorn.config import Config

from trackline.context import ENVIRON_KEY, get_tracking_id, set_tracking_id
from trackline.headers import echo_headers
from trackline.policy import DEFAULTS, TrackingPolicy

#: The last request gunicorn finished in this greenlet or thread, and its tracking ID (from the app's environ).
_finished: ContextVar[tuple[Any, str | None] | None] = ContextVar("trackline_finished_request", default=None)


def answer_rejections(cfg: Config, app_config: Mapping[str, Any]) -> None:
    """Wrap ``cfg``'s ``post_request`` and ``post_worker_init`` hooks (the operator's, or gunicorn's no-ops) so
    that each worker answers the requests it rejects or fails as trackline."""
    post_request, post_worker_init = cfg.post_request, cfg.post_worker_init

    def note_then_post_request(worker: Any, req: Any, environ: dict[str, Any] | None, resp: Any) -> None:
        _finished.set((req, (environ or {}).get(ENVIRON_KEY)))  # runs before handle_error for a failed request
        post_request(worker, req, environ, resp)

    def answer_then_post_worker_init(worker: Any) -> None:
        _answer_as_trackline(worker, TrackingPolicy.from_config({**DEFAULTS, **app_config}))
        post_worker_init(worker)

    cfg.set("post_request", note_then_post_request)
    cfg.set("post_worker_init", answer_then_post_worker_init)


def _answer_as_trackline(worker: Any, policy: TrackingPolicy) -> None:
    """Give ``worker``'s own answers an ID for their log lines, and this process's error page the envelope."""
    handle_error = worker.handle_error

    def handle_error_with_id(req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        finished_req, tracking_id = _finished.get() or (None, None)
        failed = req is not None and req is finished_req  # the app failed on this request: keep its ID
        set_tracking_id((tracking_id if failed else None) or policy.generate())
        try:
            handle_error(req, client, addr, exc)
        finally:
            set_tracking_id(None)

    def write_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
        msg = f"{reason.lower()}: {mesg}" if mesg else reason.lower()
        body = json.dumps({"code": status_int, "msg": msg, "data": None}).encode()
        head = [f"HTTP/1.1 {status_int} {reason}", "Connection: close", "Content-Type: application/json",
                f"Content-Length: {len(body)}", *(f"{name}: {value}" for name, value in
                                                  echo_headers(policy.header, get_tracking_id()))]
        util.write_nonblock(sock, "\r\n".join([*head, "", ""]).encode("latin-1") + body)

    worker.handle_error = handle_error_with_id
    util.write_error = write_error  # gunicorn's only caller is Worker.handle_error; this process is the worker
