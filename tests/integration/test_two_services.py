"""Two real trackline services on loopback: A's /api/relay calls B, and one tracking ID (and trace) spans both:
B's request is a child of the span A logged for the call that caused it."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from support.logs import assert_contract
from support.paths import TRACKLINE
from support.relay import relay
from support.server import Server

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
SPAN = re.compile(r"[0-9a-f]{16}")
ONE_WORKER = {"TRACKLINE_WORKERS": "1"}


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


def test_one_tracking_id_spans_both_services_and_trace_merges_them(pair):
    a, b = pair
    tracking_id = "relay-7f3a"
    assert relay(a, {"X-Tracking-ID": tracking_id}) == tracking_id
    assert a.stop() == 0 and b.stop() == 0

    [call, answered] = lines_of(a, "app.log", tracking_id)
    assert (call["logger"], call["message"]) == ("trackline.propagation", f"GET {b.url}/api/health")
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
    assert sorted(map(json.dumps, printed)) == sorted(map(json.dumps, [call, answered, health, a_access, b_access]))
    moments = [datetime.fromisoformat(r["@timestamp"]) for r in printed]
    assert moments == sorted(moments)

    human = trace(tracking_id, a, b, pretty=True)
    assert human.returncode == 0
    rows = human.stdout.splitlines()
    assert len(rows) == 5 and not any(row.startswith("{") for row in rows)
    for text in ("GET /api/relay?calls=1 -> 200", "GET /api/health -> 200", "Health check", "downstream answered"):
        assert sum(text in row for row in rows) == 1, (text, rows)


def spans(a: Server, b: Server, tracking_id: str) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """A's "downstream answered" line (in A's request span), A's call lines, and B's "Health check" lines."""
    a_lines = lines_of(a, "app.log", tracking_id)
    answered = next(r for r in a_lines if r["message"] == "downstream answered")
    calls = [r for r in a_lines if r["logger"] == "trackline.propagation"]
    health = [r for r in lines_of(b, "app.log", tracking_id) if r["message"] == "Health check"]
    return answered, calls, health


def assert_each_call_is_the_parent_of_bs_request(answered: dict[str, Any], calls: list[dict[str, Any]],
                                                 health: list[dict[str, Any]], trace_id: str) -> None:
    """Every line shares ``trace_id``; each call A logged is a child of A's request span and the parent of one
    of B's requests, in order; no two spans are the same."""
    assert len(calls) == len(health) >= 1
    for call, downstream in zip(calls, health, strict=True):
        assert call["trace_id"] == downstream["trace_id"] == answered["trace_id"] == trace_id
        assert call["parent_span_id"] == answered["span_id"]
        assert downstream["parent_span_id"] == call["span_id"]
    every_span = [answered["span_id"], *(r["span_id"] for r in calls + health)]
    assert all(SPAN.fullmatch(span) for span in every_span) and len(set(every_span)) == len(every_span)


def test_traceparent_makes_the_tracking_id_and_a_child_span_downstream(pair):
    a, b = pair
    tracking_id = relay(a, {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "tracestate": "vendor=abc"})
    assert tracking_id == TRACE_ID
    assert a.stop() == 0 and b.stop() == 0

    answered, calls, health = spans(a, b, TRACE_ID)  # B got A's X-Tracking-ID, so B's ID is the trace-id too
    assert answered["parent_span_id"] == PARENT_ID  # A's caller
    assert_each_call_is_the_parent_of_bs_request(answered, calls, health, TRACE_ID)
    assert PARENT_ID not in {r["span_id"] for r in calls + health}
    for server, app_line in ((a, answered), (b, health[0])):  # each access line is in its service's span
        [access] = lines_of(server, "access.log", TRACE_ID)
        assert (access["trace_id"], access["span_id"]) == (TRACE_ID, app_line["span_id"])


def test_without_traceparent_a_starts_the_trace_and_each_call_is_its_own_child_span(pair):
    a, b = pair
    tracking_id = relay(a, {}, calls=2)
    trace_id = uuid.UUID(tracking_id).hex  # A generated the ID: its hex digits are the new trace-id
    assert a.stop() == 0 and b.stop() == 0

    answered, calls, health = spans(a, b, tracking_id)
    assert "parent_span_id" not in answered  # A's request is the root of the trace
    assert_each_call_is_the_parent_of_bs_request(answered, calls, health, trace_id)
    assert len({downstream["parent_span_id"] for downstream in health}) == 2
    for server in (a, b):
        assert {r["trace_id"] for r in lines_of(server, "access.log", tracking_id)} == {trace_id}


def test_relay_refuses_a_bad_calls_count(pair):
    a, _ = pair
    for bad in ("0", "11", "two"):
        response = a.get(f"/api/relay?calls={bad}")
        assert response.status == 400
        assert response.json()["msg"] == "calls: must be a whole number from 1 to 10"


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

    [call, error] = lines_of(server, "app.log", "dead-downstream")
    assert call["message"] == f"GET {dead}/api/health"  # logged as it was sent: the span of a call that failed
    assert error["level"] == "ERROR" and error["message"] == f"downstream call failed: {dead}/api/health"
    assert "refused" in error["error"].lower()
    [access] = lines_of(server, "access.log", "dead-downstream")
    assert access["status_code"] == 502
