"""The names trackline shares with its WSGI server: environ keys, the headers on every response, the WSGI types.

Free of Flask imports: gunicorn's workers also put the headers on the error answers gunicorn sends itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

#: The environ key holding the request's effective tracking ID (gunicorn's access logger reads it after the app).
TRACKING_ID_KEY = "trackline.tracking_id"
#: The environ key holding the token of the request's scope (``trackline.context.enter``).
SCOPE_TOKEN_KEY = "trackline.scope_token"
#: Set in the environ by a server that leaves the request's scope itself once it is done with the request
#: (trackline's gunicorn hooks), so that what it logs after the response (a traceback) is still in the scope.
SERVER_LEAVES_KEY = "trackline.server_leaves_scope"

DATETIME_HEADER = "X-DateTime"
#: Names the response headers a browser's script may read (CORS): the tracking header among them.
EXPOSE_HEADERS = "Access-Control-Expose-Headers"

_now_cache: tuple[int, str] = (-1, "")


def header_key(header: str) -> str:
    """The WSGI environ key of a request header: ``X-Tracking-ID`` -> ``HTTP_X_TRACKING_ID``."""
    return "HTTP_" + header.upper().replace("-", "_")


def local_now() -> str:
    """The local time as ISO 8601 to the second (``2026-01-17T16:44:37+08:00``), rendered once a second."""
    global _now_cache
    second = int(time.time())
    if _now_cache[0] != second:
        _now_cache = (second, datetime.fromtimestamp(second).astimezone().isoformat(timespec="seconds"))
    return _now_cache[1]


def echo_headers(header: str, tracking_id: str) -> list[tuple[str, str]]:
    """``[(header, tracking_id), ("X-DateTime", now)]``: what a response adds after dropping any it had."""
    return [(header, tracking_id), (DATETIME_HEADER, local_now())]
