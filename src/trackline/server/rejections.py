"""Requests gunicorn answers itself get a tracking ID and the JSON envelope, like every other response.

gunicorn turns some requests away before the app sees them (a malformed request line or header, a request
line or header field over its limits, ...): it logs a warning to error.log, for some of them an access line,
and sends an HTML error page. In trackline's workers each such request gets a new tracking ID, which its
warning and access line carry and which comes back in the tracking header, with X-DateTime, on a JSON
envelope: ``{"code": 400, "msg": "bad request: <gunicorn's detail>", "data": null}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gunicorn import util
from gunicorn.config import Config

from trackline.context import get_tracking_id, set_tracking_id
from trackline.headers import echo_headers
from trackline.policy import DEFAULTS, TrackingPolicy


def answer_rejections(cfg: Config, app_config: Mapping[str, Any]) -> None:
    """Wrap ``cfg``'s ``post_worker_init`` so that each worker answers the requests it rejects as trackline."""
    post_worker_init = cfg.post_worker_init

    def answer_then_post_worker_init(worker: Any) -> None:
        _answer_as_trackline(worker, TrackingPolicy.from_config({**DEFAULTS, **app_config}))
        post_worker_init(worker)

    cfg.set("post_worker_init", answer_then_post_worker_init)


def _answer_as_trackline(worker: Any, policy: TrackingPolicy) -> None:
    """Give ``worker``'s rejections an ID for their log lines, and this process's error page the envelope."""
    handle_error = worker.handle_error

    def handle_error_with_id(req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        set_tracking_id(get_tracking_id() or policy.generate())  # kept if the app's request was still current
        try:
            handle_error(req, client, addr, exc)
        finally:
            set_tracking_id(None)

    def write_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
        tracking_id = get_tracking_id() or policy.generate()
        msg = f"{reason.lower()}: {mesg}" if mesg else reason.lower()
        body = json.dumps({"code": status_int, "msg": msg, "data": None}).encode()
        head = [f"HTTP/1.1 {status_int} {reason}", "Connection: close", "Content-Type: application/json",
                f"Content-Length: {len(body)}", *(f"{name}: {value}" for name, value in
                                                  echo_headers(policy.header, tracking_id))]
        util.write_nonblock(sock, "\r\n".join([*head, "", ""]).encode("latin-1") + body)

    worker.handle_error = handle_error_with_id
    util.write_error = write_error  # gunicorn's only caller is Worker.handle_error; this process is the worker
