"""The two headers on every trackline response: the tracking ID (under the policy's header name) and X-DateTime.

Free of Flask imports: gunicorn's workers also put them on the error answers gunicorn sends itself.
"""

from __future__ import annotations

import time
from datetime import datetime

DATETIME_HEADER = "X-DateTime"
#: Names the response headers a browser's script may read (CORS): the tracking header among them.
EXPOSE_HEADERS = "Access-Control-Expose-Headers"

_now_cache: tuple[int, str] = (-1, "")


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
