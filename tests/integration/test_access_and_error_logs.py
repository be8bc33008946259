"""Mixed concurrent traffic through real gunicorn: all three log files stay JSON and agree on the tracking ID."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from conftest import Response, Server, assert_access_line, assert_contract

REQUESTS = 120
REPLACED = "replaced invalid tracking ID from X-Tracking-ID"


@dataclass(frozen=True)
class Kind:
    """One sort of request in the mix and what it must leave in app.log (messages, in order)."""

    method: str
    path: str
    status: int
    sent_id: str | None  # "valid", "invalid" or None (no header)
    app_messages: tuple[str, ...]


KINDS = (
    Kind("GET", "/api/health", 200, "valid", ("Health check",)),
    Kind("GET", "/api/names", 200, None, ()),
    Kind("GET", "/api/health", 200, "invalid", (REPLACED, "Health check")),
    Kind("GET", "/api/nope", 404, None, ()),
    Kind("POST", "/api/health", 405, "valid", ()),
    Kind("GET", "/api/error", 500, None, ("unhandled exception: GET /api/error",)),
    Kind("GET", "/api/users", 200, "valid", ()),
)


@dataclass(frozen=True)
class Sent:
    number: int
    kind: Kind
    headers: dict[str, str]
    response: Response

    @property
    def tracking_id(self) -> str:
        return self.response.headers["X-Tracking-ID"]


def _send(server: Server, number: int) -> Sent:
    kind = KINDS[number % len(KINDS)]
    headers = {"Referer": f"http://client.test/page/{number}", "User-Agent": f"mixed-traffic/{number}"}
    if kind.sent_id == "valid":
        headers["X-Tracking-ID"] = f"mixed-{number}"
    elif kind.sent_id == "invalid":
        headers["X-Tracking-ID"] = f"bad id {number}"
    response = server.request(f"{kind.path}?n={number}", method=kind.method, headers=headers)
    return Sent(number, kind, headers, response)


def test_mixed_traffic_leaves_json_lines_joined_by_the_effective_tracking_id(server: Server) -> None:
    workers = server.wait_for_workers()
    with ThreadPoolExecutor(max_workers=20) as pool:
        sent = list(pool.map(lambda n: _send(server, n), range(REQUESTS)))
    assert server.stop() == 0
    logs = {name: server.logs(name) for name in ("app.log", "access.log", "error.log")}
    for records in logs.values():
        for record in records:
            assert_contract(record)
    for record in logs["access.log"]:
        assert_access_line(record)

    assert len({s.tracking_id for s in sent}) == REQUESTS
    assert {r["pid"] for r in logs["access.log"]} == workers  # two processes append to one file
    for request in sent:
        _assert_request_logged(server, request, logs)

    errors = logs["error.log"]
    assert {r["logger"] for r in errors} == {"gunicorn.error"}
    assert not [r for r in errors if r["level"] in ("ERROR", "CRITICAL")]
    messages = [r["message"] for r in errors]
    for expected in ("Starting gunicorn", f"Listening at: {server.url}", "Booting worker with pid",
                     "Shutting down: Master"):
        assert any(m.startswith(expected) for m in messages), (expected, messages)


def _assert_request_logged(server: Server, request: Sent, logs: dict[str, list[dict[str, Any]]]) -> None:
    """One response: its ID policy, its single access line, its app lines, nothing in error.log."""
    kind, tracking_id, response = request.kind, request.tracking_id, request.response
    assert response.status == kind.status, request
    if kind.sent_id == "valid":
        assert tracking_id == request.headers["X-Tracking-ID"]
    else:
        assert uuid.UUID(tracking_id).version == 4, request  # generated (the post logged "-" here)

    access = [r for r in logs["access.log"] if r["tracking_id"] == tracking_id]
    assert len(access) == 1, (request, access)
    line = access[0]
    assert (line["request_method"], line["request_path"], line["query_string"], line["status_code"]) == (
        kind.method, kind.path, f"n={request.number}", kind.status)
    assert (line["referer"], line["user_agent"]) == (request.headers["Referer"], request.headers["User-Agent"])
    assert (line["remote_addr"], line["protocol"], line["host"]) == (
        "127.0.0.1", "HTTP/1.1", server.url.removeprefix("http://"))
    assert line["response_length"] == len(response.body)

    app = [r for r in logs["app.log"] if r["tracking_id"] == tracking_id]
    assert tuple(r["message"] for r in app) == kind.app_messages, request
    if kind.sent_id == "invalid":
        assert app[0]["level"] == "WARNING"
        assert app[0]["rejected_tracking_id"] == request.headers["X-Tracking-ID"]
    if kind.status == 500:
        assert app[0]["level"] == "ERROR"
        assert "RuntimeError: This is a test exception" in app[0]["exc_info"]
        assert response.json()["data"] == {"tracking_id": tracking_id}
        assert "This is a test exception" not in response.body.decode()
    assert not [r for r in logs["error.log"] if r["tracking_id"] == tracking_id]
