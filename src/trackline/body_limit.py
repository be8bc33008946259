"""A WSGI middleware enforcing a request body size limit (``MAX_CONTENT_LENGTH``) for every route.

Flask enforces ``MAX_CONTENT_LENGTH`` only when a route reads the body, so a route that ignores its body
accepts any size. ``BodyLimit`` answers 413 before the app runs when the declared
``Content-Length`` is over the limit; a chunked body (no ``Content-Length``) is read up to the limit first and
answered 413 as soon as it passes it, else handed to the app as read. The 413 is trackline's envelope, or for
an app that does not use it (``envelope=False``: a served app without ``TRACKLINE_ERROR_ENVELOPE``) a short
plain-text page with the status and the tracking ID. No Flask import: it wraps any WSGI app.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from trackline.context import get_tracking_id
from trackline.envelope import PLAIN_TYPE, envelope, plain_page
from trackline.wsgi import StartResponse, WsgiApp

#: What a 413 is called in its envelope's ``msg`` (werkzeug's name for it, as Flask's own 413 says).
TOO_LARGE = "request entity too large"

#: How much of a chunked body is read at a time.
READ_SIZE = 64 * 1024


def with_body_limit(app: WsgiApp, limit: int | None, envelope: bool = True) -> WsgiApp:
    """``app`` behind ``BodyLimit`` when there is a ``limit`` (``MAX_CONTENT_LENGTH``), else ``app`` itself."""
    return app if limit is None else BodyLimit(app, limit, envelope)


class BodyLimit:
    """``app`` behind a limit of ``limit`` body bytes; its 413 is the envelope, or plain text if not ``envelope``."""

    def __init__(self, app: WsgiApp, limit: int, envelope: bool = True) -> None:
        self.app = app
        self.limit = limit
        self.envelope = envelope

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        declared = environ.get("CONTENT_LENGTH")
        if declared:
            if not declared.isdigit() or int(declared) <= self.limit:  # an invalid one is the app's to refuse
                return self.app(environ, start_response)
            return self._too_large(environ, start_response)
        if environ.get("HTTP_TRANSFER_ENCODING", "").lower().endswith("chunked"):
            body = self._read_within_limit(environ["wsgi.input"])
            if body is None:
                return self._too_large(environ, start_response)
            environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)

    def _read_within_limit(self, stream: Any) -> bytes | None:
        """The whole body, or ``None`` as soon as it passes the limit."""
        parts, size = [], 0
        while chunk := stream.read(min(READ_SIZE, self.limit + 1 - size)):
            parts.append(chunk)
            size += len(chunk)
            if size > self.limit:
                return None
        return b"".join(parts)

    def _too_large(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        msg = f"{environ.get('REQUEST_METHOD', '')} {environ.get('PATH_INFO', '')} {TOO_LARGE}".strip()
        if self.envelope:
            body, content_type = envelope(413, msg), "application/json"
        else:
            body, content_type = plain_page(413, "Request Entity Too Large", msg, get_tracking_id()), PLAIN_TYPE
        # No "Connection: close": gunicorn has no lingering close, so closing with the body unread would reset the
        # connection under a client still sending it, before it reads the 413; kept alive, gunicorn discards the
        # rest of the body before it reads the next request.
        start_response("413 Request Entity Too Large", [("Content-Type", content_type),
                                                        ("Content-Length", str(len(body)))])
        return [body]
