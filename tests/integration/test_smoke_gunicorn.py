"""The first thing to fail if trackline cannot run under gunicorn at all."""

import socket

from support.http import raw_exchange
from support.logs import assert_contract
from support.waiting import wait_until


def test_generated_id_reaches_response_app_and_access_logs(server):
    response = server.get("/api/health")
    tracking_id = response.headers["X-Tracking-ID"]
    assert response.status == 200
    assert response.json() == {"code": 200, "msg": "GET /api/health success", "data": "OK"}
    server.stop()
    app_lines = [r for r in server.logs("app.log") if r["tracking_id"] == tracking_id]
    access_lines = [r for r in server.logs("access.log") if r["tracking_id"] == tracking_id]
    assert [r["message"] for r in app_lines] == ["Health check"]
    assert len(access_lines) == 1 and access_lines[0]["status_code"] == 200
    for name in ("app.log", "access.log", "error.log"):
        for record in server.logs(name):
            assert_contract(record)


def test_gunicorn_lines_name_gunicorns_code_not_its_logger_wrapper(server):
    server.stop()
    booting = [r for r in server.logs("error.log") if r["message"].startswith("Booting worker")]
    assert booting and all(r["loc"].startswith("arbiter.py:") and r["func"] == "spawn_worker" for r in booting)
    assert not [r for r in server.logs("error.log") if r["loc"].startswith("glogging.py:")]


def test_a_requests_lines_reach_the_files_while_its_keep_alive_connection_stays_open(server):
    """Lines wait only for the worker's loop turn, not for a later request or the worker's exit."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        request = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Tracking-ID: keep-alive-1\r\n\r\n"
        assert raw_exchange(sock, request).status == 200
        for name in ("app.log", "access.log"):  # the connection is still open: the worker waits on it
            wait_until(lambda name=name: any(r["tracking_id"] == "keep-alive-1" for r in server.logs(name)),
                       f"the request's line in {name}", timeout=5)
