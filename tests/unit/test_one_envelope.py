"""One envelope: the app's responses, the body limit's 413 and nginx's error pages all build the same JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from flask import Flask

from trackline.body_limit import with_body_limit
from trackline.envelope import envelope
from trackline.responses import Success

NGINX_CONF = Path(__file__).resolve().parents[2] / "nginx" / "trackline.conf"


def test_the_envelope_has_code_msg_data_in_that_order_and_keeps_non_ascii_text() -> None:
    assert envelope(404, "GET /x not found") == b'{"code": 404, "msg": "GET /x not found", "data": null}'
    assert json.loads(envelope(200, "ok", {"name": "张三"})) == {"code": 200, "msg": "ok", "data": {"name": "张三"}}
    assert "张三".encode() in envelope(200, "ok", {"name": "张三"})


def test_a_flask_response_and_the_body_limit_answer_with_the_same_function() -> None:
    with Flask("one").test_request_context("/api/names"):
        assert Success(data=["a"]).get_data() == envelope(200, "GET /api/names success", ["a"])
    started: list[Any] = []
    too_large = with_body_limit(lambda environ, start_response: [], 1)
    body = too_large({"CONTENT_LENGTH": "2", "REQUEST_METHOD": "POST", "PATH_INFO": "/up"},
                     lambda *args: started.append(args))
    assert body == [envelope(413, "POST /up request entity too large")]


def nginx_error_messages() -> dict[str, str]:
    """``map $status $trackline_error_message``'s entries in nginx/trackline.conf."""
    text = NGINX_CONF.read_text()
    block = re.search(r"map \$status \$trackline_error_message \{(.*?)\}", text, re.DOTALL)
    assert block is not None
    return dict(re.findall(r'^\s*(\S+)\s+"([^"]*)";', block.group(1), re.MULTILINE))


def test_nginx_error_pages_are_the_same_envelope() -> None:
    """nginx cannot call Python: its template, with its variables filled in, must give the same JSON."""
    [template] = re.findall(r"return 200 '(.*)';", NGINX_CONF.read_text())
    messages = nginx_error_messages()
    assert {"502", "504"} <= messages.keys()
    for status in ("502", "504"):
        filled = (template.replace("$status", status).replace("$trackline_error_message", messages[status])
                  .replace("$trackline_response_tracking_id", "edge-1"))
        assert filled.encode() == envelope(int(status), messages[status], {"tracking_id": "edge-1"})
