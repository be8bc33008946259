"""Mixed concurrent traffic through real gunicorn: all three log files stay JSON and agree on the tracking ID."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from support.conf import edit_yaml
from support.http import Response, raw_request
from support.load import concurrently
from support.logs import assert_access_line, assert_contract
from support.server import Server

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
    sent = concurrently(lambda n: _send(server, n), range(REQUESTS), threads=20)
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


#: Operator hooks: ``escape.post_worker_init`` makes two routes fail as only a streamed body can (/escape
#: raises before its headers went out: gunicorn answers 500; /escape-late after: gunicorn cuts it off), and
#: ``escape.post_request`` logs a line per request and fails on /api/item.
ESCAPE_HOOK = '''
import logging


def post_request(worker, req, environ, resp):
    logging.getLogger("escape").info("post_request %s", req.path)
    if req.path == "/api/item":
        raise RuntimeError("the operator's hook failed")


def post_worker_init(worker):
    tracking = worker.wsgi.wsgi_app  # trackline's TrackingMiddleware around Flask
    inner = tracking.app

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/escape":
            def body():
                raise RuntimeError("escaped the app")
                yield b""
        elif environ["PATH_INFO"] == "/escape-late":
            def body():
                yield b"partial"
                raise RuntimeError("escaped the app after its headers")
        else:
            return inner(environ, start_response)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body()

    tracking.app = app
'''


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize("worker_class", ["gevent", "sync", "gthread"])
def test_errors_gunicorn_answers_keep_the_requests_tracking_id(make_server: Any, worker_class: str) -> None:
    """gunicorn answers 500 (or cuts the response off) and logs the traceback of an exception that escapes
    the app: the answer, the traceback and the access lines carry the request's own ID; later lines do not."""
    server = make_server(env={"TRACKLINE_WORKERS": "1"})
    (server.root / "escape.py").write_text(ESCAPE_HOOK)
    server.env["PYTHONPATH"] = str(server.root)
    edit_yaml(server.conf_dir / "gunicorn.yaml", lambda settings: settings.update(
        worker_class=worker_class, post_worker_init="escape.post_worker_init", post_request="escape.post_request"))
    server.start()
    failed = server.get("/escape", headers={"X-Tracking-ID": "escape-1", "traceparent": TRACEPARENT})
    cut_off = raw_request(server.port, b"GET /escape-late HTTP/1.1\r\nHost: t\r\nX-Tracking-ID: late-1\r\n\r\n")
    after = server.get("/api/health")
    hook_failed = server.get("/api/item", headers={"X-Tracking-ID": "item-1"})
    assert server.stop() == 0
    assert (failed.status, failed.headers["X-Tracking-ID"]) == (500, "escape-1")
    assert failed.json() == {"code": 500, "msg": "internal server error", "data": None}
    assert (cut_off.status, cut_off.headers["X-Tracking-ID"]) == (200, "late-1")

    assert hook_failed.status == 200
    errors = [r for r in server.logs("error.log") if r["level"] == "ERROR"]
    assert {r["tracking_id"]: r["exc_info"].splitlines()[-1] for r in errors} == {
        "escape-1": "RuntimeError: escaped the app", "late-1": "RuntimeError: escaped the app after its headers",
        "item-1": "RuntimeError: the operator's hook failed"}
    assert [r.get("trace_id") for r in errors if r["tracking_id"] == "escape-1"] == [TRACEPARENT.split("-")[1]]
    assert all(r["tracking_id"] is None for r in server.logs("error.log") if r not in errors)
    hook_lines = {r["message"]: r["tracking_id"] for r in server.logs("app.log") if r["logger"] == "escape"}
    assert hook_lines["post_request /api/health"] == after.headers["X-Tracking-ID"]
    assert hook_lines["post_request /api/item"] == "item-1"
    access = [(r["tracking_id"], r["request_path"], r["status_code"]) for r in server.logs("access.log")]
    # gunicorn logs the request that it answered twice: as the app began it (200), then as it answered it (500).
    assert [line for line in access if line[1].startswith("/escape")] == [
        ("escape-1", "/escape", 200), ("escape-1", "/escape", 500), ("late-1", "/escape-late", 200)]
    assert (after.headers["X-Tracking-ID"], "/api/health", 200) in access
