"""The JSON envelope ``{"code": ..., "msg": ..., "data": ...}``: one function builds it for every answer trackline
gives (the app's responses, the body limit's 413, gunicorn's own error answers); nginx's copy in
nginx/trackline.conf is tested against it. No Flask import.
"""

from __future__ import annotations

import json
from datetime import date, time
from typing import Any


def _json_default(value: Any) -> str:
    """How data JSON cannot encode is sent: ISO 8601 for dates and times, ``str()`` for anything else."""
    if isinstance(value, (date, time)):
        return value.isoformat()
    return str(value)


#: ``json.dumps(..., ensure_ascii=False, default=_json_default)`` without building an encoder per response.
_encode = json.JSONEncoder(ensure_ascii=False, default=_json_default).encode


def envelope(code: int, msg: str, data: Any = None) -> bytes:
    """The body of an answer: ``code`` is its HTTP status. Raises ``TypeError``/``ValueError`` for ``data`` JSON
    cannot hold even as text (non-string keys, a circular reference)."""
    return _encode({"code": int(code), "msg": msg, "data": data}).encode()


#: The ``Content-Type`` of ``plain_page``.
PLAIN_TYPE = "text/plain; charset=utf-8"


def plain_page(code: int, reason: str, msg: str, tracking_id: str | None) -> bytes:
    """The body of an answer trackline gives for a served app that does not use the envelope (an HTML app):
    the status, what was wrong and the tracking ID, one per line, as plain text."""
    lines = [f"{int(code)} {reason}", *([msg] if msg else []), f"tracking ID: {tracking_id or '-'}"]
    return ("\n".join(lines) + "\n").encode()
