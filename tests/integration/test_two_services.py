"""Two real trackline services on loopback: A's /api/relay calls B, and one tracking ID (and trace) spans both."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from conftest import TRACKLINE, Server, assert_contract

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
SPAN = re.compile(r"[0-9a-f]{16}")
ONE_WORKER = {"TRACKLINE_WORKERS": "1"}
HEALTH = {"code": 200, "msg": "GET /api/health success", "data": "OK"}


def with_downstream(server: Server, url: str) -> Server:
    """Point ``server``'s /api/relay at ``url`` by appending DOWNSTREAM_URL to its app.yaml."""
    with (server.conf_dir / "app.yaml").open("a", encoding="utf-8") as app_yaml:
        app_yaml.write(f"\nDOWNSTREAM_URL: {url}\n")
    return server


@pytest.fixture
def pair(make_server: Any) -> tuple[Server, Server]:
    """Started services ``(a, b)``: A's DOWNSTREAM_URL is B."""
    b = make_server(env=ONE_WORKER, name="b").start()
    a = with_downstream(make_server(env=ONE_WORKER, name="a"), b.url).start()
    return a, b


def lines_of(server: Server, name: str, tracking_id: str) -> list[dict[str, Any]]:
    records = server.logs(name)
    for record in records:
        assert_contract(record)
    return [r for r in records if r["tracking_id"] == tracking_id]


def trace(tracking_id: str, *servers: Server, pretty: bool = False) -> subprocess.CompletedProcess[str]:
    dirs = [arg for server in servers for arg in ("--log-dir", str(server.log_dir))]
    return subprocess.run([str(TRACKLINE), "trace", tracking_id, *dirs, *(["--pretty"] if pretty else [])],
                          capture_output=True, text=True, timeout=30)


def relay(a: Server, headers: dict[str, str]) -> str:
    """GET A/api/relay (200, with B's health answer inside); the tracking ID A answered with."""
    response = a.get("/api/relay", headers=headers)
    assert response.status == 200, response.body
    assert response.json()["data"] == {"downstream_status": 200, "downstream": HEALTH}
    return response.headers["X-Tracking-ID"]


def test_one_tracking_id_spans_both_services_and_trace_merges_them(pair):
    a, b = pair
    tracking_id = "relay-7f3a"
    assert relay(a, {"X-Tracking-ID": tracking_id}) == tracking_id
    assert a.stop() == 0 and b.stop() == 0

    [answered] = lines_of(a, "app.log", tracking_id)
    assert answered["message"] == "downstream answered" and answered["downstream_status"] == 200
    assert answered["downstream_url"] == f"{b.url}/api/health"
    [health] = lines_of(b, "app.log", tracking_id)
    assert health["message"] == "Health check"
    [a_access] = lines_of(a, "access.log", tracking_id)
    [b_access] = lines_of(b, "access.log", tracking_id)
    assert (a_access["request_path"], a_access["status_code"]) == ("/api/relay", 200)
    assert (b_access["request_path"], b_access["status_code"]) == ("/api/health", 200)
    assert a_access["pid"] != b_access["pid"]

    result = trace(tracking_id, a, b)
    assert result.returncode == 0 and result.stderr == ""
    printed = [json.loads(row) for row in result.stdout.splitlines()]
    assert sorted(map(json.dumps, printed)) == sorted(map(json.dumps, [answered, health, a_access, b_access]))
    moments = [datetime.fromisoformat(r["@timestamp"]) for r in printed]
    assert moments == sorted(moments)

    human = trace(tracking_id, a, b, pretty=True)
    assert human.returncode == 0
    rows = human.stdout.splitlines()
    assert len(rows) == 4 and not any(row.startswith("{") for row in rows)
    for text in ("GET /api/relay -> 200", "GET /api/health -> 200", "Health check", "downstream answered"):
        assert sum(text in row for row in rows) == 1, (text, rows)


def test_traceparent_makes_the_tracking_id_and_a_child_span_downstream(pair):
    a, b = pair
    tracking_id = relay(a, {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "tracestate": "vendor=abc"})
    assert tracking_id == TRACE_ID
    assert a.stop() == 0 and b.stop() == 0

    [answered] = lines_of(a, "app.log", TRACE_ID)
    [health] = lines_of(b, "app.log", TRACE_ID)  # B got A's X-Tracking-ID, so B's ID is the trace-id too
    assert answered["trace_id"] == health["trace_id"] == TRACE_ID
    assert SPAN.fullmatch(answered["span_id"]) and SPAN.fullmatch(health["span_id"])
    assert len({PARENT_ID, answered["span_id"], health["span_id"]}) == 3
    assert answered["parent_span_id"] == PARENT_ID  # A's caller
    assert health["parent_span_id"] == answered["span_id"]  # B was called from A's span
    for server, app_line in ((a, answered), (b, health)):  # each access line is in its service's span
        [access] = lines_of(server, "access.log", TRACE_ID)
        assert (access["trace_id"], access["span_id"]) == (TRACE_ID, app_line["span_id"])


def test_relay_without_downstream_is_503(make_server):
    server = make_server(env=ONE_WORKER).start()
    response = server.get("/api/relay", headers={"X-Tracking-ID": "no-downstream"})
    assert response.status == 503 and response.headers["X-Tracking-ID"] == "no-downstream"
    assert response.json() == {"code": 503, "msg": "DOWNSTREAM_URL is not configured", "data": None}


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, never listening, so nothing else can take it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_relay_to_dead_downstream_is_502_and_logs_an_error(make_server, closed_port):
    dead = f"http://127.0.0.1:{closed_port}"
    server = with_downstream(make_server(env=ONE_WORKER), dead).start()
    response = server.get("/api/relay", headers={"X-Tracking-ID": "dead-downstream"})
    assert response.status == 502 and response.headers["X-Tracking-ID"] == "dead-downstream"
    assert response.json() == {"code": 502, "msg": "downstream call failed", "data": None}
    assert server.stop() == 0

    [error] = lines_of(server, "app.log", "dead-downstream")
    assert error["level"] == "ERROR" and error["message"] == f"downstream call failed: {dead}/api/health"
    assert "refused" in error["error"].lower()
    [access] = lines_of(server, "access.log", "dead-downstream")
    assert access["status_code"] == 502
