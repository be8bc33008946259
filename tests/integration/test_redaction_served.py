"""A real ``trackline serve`` and a real nginx edge: listed query parameters and headers never reach access.log,
app.log, error.log or the edge's line; with the default lists and with app.yaml's own."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from support import http
from support.conf import edit_yaml
from support.edge import Edge, require_nginx
from support.server import Server
from support.waiting import wait_until

R = "[REDACTED]"
LOG_FILES = ("access.log", "app.log", "error.log")

#: A served app that logs what apps log: the URL, the headers, a credential, as extra fields and as an argument.
LEAKY_APP = '''
import logging

from flask import Flask, request

log = logging.getLogger("leaky")


def create():
    app = Flask("leaky")

    @app.get("/echo")
    def echo():
        log.info("echo", extra={"url": request.url, "full_path": request.full_path, "headers": dict(request.headers),
                                "authorization": request.headers.get("Authorization"),
                                "x_session": request.headers.get("X-Session"), "user_id": 7})
        log.warning("called with %s", request.full_path)
        return {"ok": True}

    @app.get("/ping")
    def ping():
        return "pong"

    return app
'''


def serve_leaky(make_server: Any, tmp_path: Path, app_yaml: str = "") -> Server:
    code = tmp_path / "code"
    code.mkdir()
    (code / "leaky.py").write_text(textwrap.dedent(LEAKY_APP))
    server: Server = make_server(args=["--app", "leaky:create()"], probe="/ping", warm_up="/ping",
                                 env={"TRACKLINE_WORKERS": "1"})
    edit_yaml(server.conf_dir / "gunicorn.yaml", lambda s: s.update(pythonpath=str(code)))
    (server.conf_dir / "app.yaml").write_text(app_yaml)
    return server.start()


def lines_of(server: Server, tracking_id: str, name: str) -> list[dict[str, Any]]:
    return [r for r in server.logs(name) if r.get("tracking_id") == tracking_id]


def assert_nowhere(server: Server, *secrets: str) -> None:
    for name in LOG_FILES:
        text = (server.log_dir / name).read_text()
        for secret in secrets:
            assert secret not in text, f"{secret} in {name}"


def test_the_default_list_keeps_secrets_out_of_access_app_and_error_lines(make_server: Any, tmp_path: Path) -> None:
    server = serve_leaky(make_server, tmp_path)
    query = "a=1&token=SECRET-T&Password=SECRET-P&keep=x%20y+z&code=&t%6Fken=SECRET-E"
    answer = server.get(f"/echo?{query}", headers={
        "X-Tracking-ID": "redact-1", "Authorization": "Bearer SECRET-A", "Cookie": "s=SECRET-C",
        "X-Api-Key": "SECRET-K", "Referer": "http://client.test/p?signature=SECRET-S&page=2", "X-Session": "seen"})
    assert answer.status == 200
    # a decoded %3F: the path then holds a query of its own (404: no such route)
    assert server.get("/echo%3Fapi_key=SECRET-Q", headers={"X-Tracking-ID": "redact-2"}).status == 404
    [access] = wait_until(lambda: lines_of(server, "redact-1", "access.log"), "the access line")
    assert access["query_string"] == f"a=1&token={R}&Password={R}&keep=x%20y+z&code=&t%6Fken={R}"
    assert access["referer"] == f"http://client.test/p?signature={R}&page=2"
    assert access["message"] == "GET /echo 200"
    [echo, called] = lines_of(server, "redact-1", "app.log")
    # Werkzeug rebuilds these (t%6Fken becomes token); the listed values are redacted either way
    for field in (echo["url"], echo["full_path"], called["message"]):
        assert f"/echo?a=1&token={R}&Password={R}&" in field and field.endswith(f"ken={R}"), field
    assert echo["authorization"] == R and echo["user_id"] == 7 and echo["x_session"] == "seen"
    assert {echo["headers"][h] for h in ("Authorization", "Cookie", "X-Api-Key")} == {R}
    assert echo["headers"]["X-Session"] == "seen" and echo["headers"]["Referer"].endswith(f"signature={R}&page=2")
    assert called["message"].startswith("called with /echo?")
    [path_query] = wait_until(lambda: lines_of(server, "redact-2", "access.log"), "the 404's access line")
    assert (path_query["request_path"], path_query["message"]) == (f"/echo?api_key={R}", f"GET /echo?api_key={R} 404")
    assert server.stop() == 0
    assert_nowhere(server, "SECRET")


def test_a_custom_list_replaces_the_default(make_server: Any, tmp_path: Path) -> None:
    server = serve_leaky(make_server, tmp_path, "TRACKLINE_REDACT_QUERY: [session_id]\n"
                                                "TRACKLINE_REDACT_HEADERS: [X-Session]\n")
    server.get("/echo?Session_ID=SECRET-S&token=visible", headers={
        "X-Tracking-ID": "custom-1", "X-Session": "SECRET-H", "Authorization": "Bearer visible"})
    [access] = wait_until(lambda: lines_of(server, "custom-1", "access.log"), "the access line")
    assert access["query_string"] == f"Session_ID={R}&token=visible"
    [echo, _] = lines_of(server, "custom-1", "app.log")
    assert (echo["x_session"], echo["headers"]["X-Session"]) == (R, R)
    assert (echo["authorization"], echo["headers"]["Authorization"]) == ("Bearer visible", "Bearer visible")
    assert server.stop() == 0
    assert_nowhere(server, "SECRET")


BOOM_APP = '''
def app(environ, start_response):
    if environ["PATH_INFO"] == "/ping":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"pong"]
    raise RuntimeError("escaped the app")
'''


def test_gunicorns_error_line_names_the_request_without_its_secrets(make_server: Any, tmp_path: Path) -> None:
    """gunicorn's own ``Error handling request /path?query`` (an exception that escapes a bare WSGI app)."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "boom.py").write_text(BOOM_APP)
    server: Server = make_server(args=["--app", "boom:app"], env={"TRACKLINE_WORKERS": "1"}, probe="/ping",
                                 warm_up="/ping")
    edit_yaml(server.conf_dir / "gunicorn.yaml", lambda s: s.update(pythonpath=str(code)))
    server.start()
    assert server.get("/x?apikey=SECRET-B&n=1", headers={"X-Tracking-ID": "boom-1"}).status == 500
    [error] = wait_until(lambda: [r for r in lines_of(server, "boom-1", "error.log") if r.get("exc_info")],
                         "the error line")
    assert error["message"] == f"Error handling request GET /x?apikey={R}&n=1"
    assert server.stop() == 0
    assert_nowhere(server, "SECRET")


def test_the_edge_line_redacts_the_same_parameters(make_server: Any, tmp_path: Path) -> None:
    require_nginx()
    app = make_server(env={"TRACKLINE_WORKERS": "1"}).start()
    edge = Edge(tmp_path / "edge", [f"127.0.0.1:{app.port}"]).start()
    try:
        sent = {
            "edge-1": ("/api/names?a=1&TOKEN=SECRET-1&keep=x%20y&code=&api_key=SECRET-2", {}),
            "edge-2": ("/api/names?token=SECRET-3&code=SECRET-4&password=SECRET-5&secret=SECRET-6&n=1", {}),
            "edge-3": ("/api/names%3Fsignature=SECRET-7", {"Referer": "http://client.test/?apikey=SECRET-8&p=2"}),
        }
        for tracking_id, (path, headers) in sent.items():
            _edge_get(edge, path, {"X-Tracking-ID": tracking_id, **headers})
        by_id = wait_until(lambda: lines if set(sent) <= (lines := {r["tracking_id"]: r for r in edge.logs()}).keys()
                           else None, "the edge's lines")
        assert by_id["edge-1"]["query_string"] == f"a=1&TOKEN={R}&keep=x%20y&code=&api_key={R}"
        assert by_id["edge-2"]["query_string"] == R  # more than three listed parameters: the query, whole
        assert by_id["edge-3"]["request_path"] == f"/api/names?{R}"
        assert by_id["edge-3"]["message"] == f"GET /api/names?{R} 404"
        assert by_id["edge-3"]["referer"] == f"http://client.test/?{R}"
        assert "SECRET" not in edge.access_log.read_text()
    finally:
        assert edge.stop() == 0
    assert app.stop() == 0
    assert_nowhere(app, "SECRET")


def _edge_get(edge: Edge, path: str, headers: dict[str, str]) -> None:
    http.request(f"http://127.0.0.1:{edge.port}{path}", "GET", headers, 10.0)
