"""Debian's nginx with nginx/trackline.conf in front of two real trackline hosts: one ID from the edge's line
to the app's, hostile input kept valid JSON, 502/504 envelopes with IDs, retries that keep the ID."""

from __future__ import annotations

import itertools
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from support.edge import REQUEST_ID, VALID_ID, Edge, require_nginx
from support.hostile import ANSWERED, HOSTILE_IDS, REJECTED, Case
from support.http import RawResponse, raw_request
from support.load import Load, concurrently
from support.logs import TIMESTAMP, assert_contract
from support.server import Server, new_server
from support.waiting import wait_until

ONE_WORKER = {"TRACKLINE_WORKERS": "1"}
REQUESTS = 2000
CLIENTS = 8
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
INVALID_UTF8 = "(invalid UTF-8)"

#: The edge's access fields beyond the app's, with their types (README "Log format", docs/edge.md).
EDGE_FIELDS: dict[str, Any] = {
    "remote_addr": str, "protocol": str, "host": str, "request_method": str, "request_path": str,
    "query_string": str, "status_code": int, "response_length": int, "referer": str, "user_agent": str,
    "request_time": float, "upstream_addr": str, "upstream_status": (int, type(None)),
    "upstream_response_time": (float, type(None)), "client_tracking_id": str, "trace_id": str,
}


def assert_edge_line(record: dict[str, Any]) -> None:
    assert_contract(record)
    assert (record["logger"], record["level"]) == ("nginx.access", "INFO")
    for name, kind in EDGE_FIELDS.items():
        assert name in record, f"missing {name!r} in {record}"
        assert isinstance(record[name], kind) and not isinstance(record[name], bool), f"{name!r} in {record}"
    assert record["message"] == f"{record['request_method']} {record['request_path']} {record['status_code']}"


def start_server(root: Path, env: dict[str, str] | None = None) -> Server:
    return new_server(root, env or ONE_WORKER).start()


def upstream(server: Server) -> str:
    return f"127.0.0.1:{server.port}"


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """Two trackline hosts (one gevent worker each), shared by the module's tests."""
    require_nginx()
    started: list[Server] = []
    try:
        for name in ("host-a", "host-b"):
            started.append(start_server(tmp_path_factory.mktemp(name)))
        yield started[0], started[1]
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="module")
def edge(hosts: tuple[Server, Server], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    """The edge in front of both hosts, trusting valid client IDs (the default)."""
    proxy = Edge(tmp_path_factory.mktemp("edge"), [upstream(h) for h in hosts]).start()
    yield proxy
    assert proxy.stop() == 0


def access_lines(server: Server) -> list[dict[str, Any]]:
    return server.logs("access.log")


def ids_of(records: list[dict[str, Any]]) -> Counter[str]:
    return Counter(r["tracking_id"] for r in records)


def wait_for_lines(edge: Edge, tracking_ids: set[str]) -> list[dict[str, Any]]:
    """The edge's lines once every one of ``tracking_ids`` has one (nginx writes a line as a request ends)."""
    return wait_until(lambda: records if tracking_ids <= set(ids_of(records := edge.logs())) else None,
                      f"{len(tracking_ids)} edge lines")


def send(port: int, request: bytes) -> RawResponse:
    """Send raw bytes (hostile headers go as they are); read one response, to its Content-Length or to EOF."""
    return raw_request(port, request, timeout=30)


def get(tracking_id: bytes | None = None, path: bytes = b"/api/names", extra: bytes = b"") -> bytes:
    """A raw GET with ``Connection: close``, the ID (if any) as the bytes given, ``extra`` header lines."""
    lines = [b"GET " + path + b" HTTP/1.1", b"Host: edge.test", b"Connection: close"]
    if tracking_id is not None:
        lines.append(b"X-Tracking-ID: " + tracking_id)
    return b"\r\n".join(lines) + b"\r\n" + extra + b"\r\n"


# -- 2,000 requests: valid, missing, invalid and hostile IDs ---------------------------------------------------

#: IDs the policy refuses (besides the hostile corpus): too long, a space, a comma, an empty value.
INVALID_IDS = [b"x" * 129, b"two words", b"a,b", b"", b"caf\xc3\xa9", b"semi;colon"]


def workload() -> list[tuple[bytes | None, bytes]]:
    """``(sent ID or None, raw request)`` for REQUESTS GETs: a third valid IDs, a third none, a third refused."""
    refused = [*INVALID_IDS, *HOSTILE_IDS.values(), *(c.headers["X-Tracking-ID"] for c in REJECTED
                                                       if "X-Tracking-ID" in c.headers)]
    requests: list[tuple[bytes | None, bytes]] = []
    for n in range(REQUESTS):
        kind = n % 3
        sent = f"edge-{n:04d}.{uuid.uuid4().hex[:8]}".encode() if kind == 0 else (
            None if kind == 1 else refused[n // 3 % len(refused)])
        requests.append((sent, get(sent)))
    return requests


def test_2000_requests_one_id_each_in_the_edge_line_and_in_one_app_line(edge: Edge,
                                                                         hosts: tuple[Server, Server]) -> None:
    before = {h.port: ids_of(access_lines(h)) for h in hosts}
    work = workload()
    answers = concurrently(lambda item: send(edge.port, item[1]), work, threads=CLIENTS)

    for (sent, _), answer in zip(work, answers, strict=True):
        assert len(answer.tracking_ids) == 1, (sent, answer)
        assert VALID_ID.fullmatch(answer.tracking_id), answer
        body = json.loads(answer.body)
        if sent is not None and VALID_ID.fullmatch(sent.decode("latin-1")):
            assert (answer.status, answer.tracking_id) == (200, sent.decode()), (sent, answer)
        elif answer.status == 200:  # none, or refused by the edge's policy: the edge's own $request_id
            assert REQUEST_ID.fullmatch(answer.tracking_id), (sent, answer)
        else:  # a header nginx itself refuses (NUL, a lone CR, 9 KB): its envelope, its ID, no app involved
            assert answer.status == 400 and body == {"code": 400, "msg": body["msg"],
                                                     "data": {"tracking_id": answer.tracking_id}}, (sent, answer)
    ids = {a.tracking_id for a in answers}
    assert len(ids) == REQUESTS  # one ID per request, never shared

    records = wait_for_lines(edge, ids)
    edge_lines = {r["tracking_id"]: r for r in records if r["tracking_id"] in ids}
    assert ids_of([r for r in records if r["tracking_id"] in ids]) == Counter(ids)  # exactly once each
    answered_by_apps = {a.tracking_id for a in answers if a.status == 200}
    app_ids = wait_until(lambda: ok if answered_by_apps <= set(
        (ok := {h.port: ids_of(access_lines(h)) - before[h.port] for h in hosts})[hosts[0].port]
        + ok[hosts[1].port]) else None, "the apps' access lines")
    for answer in answers:
        line = edge_lines[answer.tracking_id]
        assert_edge_line(line)
        assert line["status_code"] == answer.status
        assert (line["user_agent"], line["referer"], line["query_string"]) == ("", "", "")  # none sent
        [*_, last_addr] = line["upstream_addr"].split(", ") if line["upstream_addr"] else [""]
        counts = {port: app_ids[port][answer.tracking_id] for port in app_ids}
        if answer.status != 200:
            assert counts == {h.port: 0 for h in hosts} and line["upstream_status"] is None, line
            continue
        [(port, count)] = [(p, c) for p, c in counts.items() if c]
        assert count == 1, counts  # exactly once, in one app's log
        assert last_addr == f"127.0.0.1:{port}" and line["upstream_status"] == 200, line
        assert line["upstream_response_time"] is not None and line["upstream_response_time"] >= 0
    served = Counter(edge_lines[a.tracking_id]["upstream_addr"] for a in answers if a.status == 200)
    assert all(served[f"127.0.0.1:{h.port}"] > REQUESTS // 10 for h in hosts), served  # both hosts got traffic


# -- hostile bytes in headers and query: the edge's line stays JSON ---------------------------------------------

def logged_as(raw: bytes) -> str:
    """What the edge's line holds for a header value: the value if it is UTF-8, else the marker."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return INVALID_UTF8


@pytest.fixture(scope="module")
def hostile(edge: Edge) -> dict[str, tuple[RawResponse, dict[str, Any]]]:
    """Every case of the app's hostile corpus sent once through the edge: its answer and the edge's line."""
    answers = {case.name: send(edge.port, case.request()) for case in ANSWERED + REJECTED}
    for name, answer in answers.items():
        assert len(answer.tracking_ids) == 1, (name, answer)
    records = wait_for_lines(edge, {a.tracking_id for a in answers.values()})
    by_id = {r["tracking_id"]: r for r in records}
    return {name: (answer, by_id[answer.tracking_id]) for name, answer in answers.items()}


def test_every_edge_line_is_json_with_the_contract_and_edge_fields(edge: Edge, hostile: dict[str, Any]) -> None:
    raw = edge.access_log.read_bytes()
    assert raw.endswith(b"\n")
    raw.decode("utf-8")  # strict: one invalid byte would fail here
    for record in edge.logs():
        assert_edge_line(record)
        assert TIMESTAMP.fullmatch(record["@timestamp"])


@pytest.mark.parametrize("case", ANSWERED + REJECTED, ids=lambda c: c.name)
def test_hostile_values_are_logged_exactly_or_marked(hostile: dict[str, Any], hosts: tuple[Server, Server],
                                                     case: Case) -> None:
    answer, line = hostile[case.name]
    assert VALID_ID.fullmatch(answer.tracking_id)
    assert json.loads(answer.body)["code"] == answer.status  # the app's, gunicorn's or the edge's envelope
    assert line["status_code"] == answer.status
    if "User-Agent" in case.headers:
        assert line["user_agent"] == logged_as(case.headers["User-Agent"])
    if "Referer" in case.headers:
        assert line["referer"] == logged_as(case.headers["Referer"])
    if line["upstream_status"] is not None:  # the edge passed it on: the app's query string is the edge's
        assert line["query_string"] == logged_as(case.query)
    sent = case.headers.get("X-Tracking-ID")
    if sent is not None:
        assert answer.tracking_id != sent.decode("latin-1")  # a hostile ID never comes back, nor is it logged
        assert line["client_tracking_id"] == ""
    if line["upstream_status"] == 400:  # gunicorn refused it: its answer's ID is in the edge's line and error.log
        [warning] = [r for h in hosts for r in h.logs("error.log") if r["tracking_id"] == answer.tracking_id]
        assert warning["message"].startswith("Invalid request from ip=127.0.0.1")
    if answer.status == 200:  # answered by an app, whose access line carries the same ID and values
        app = [r for h in hosts for r in access_lines(h) if r["tracking_id"] == answer.tracking_id]
        [app_line] = app
        assert REQUEST_ID.fullmatch(answer.tracking_id)
        assert app_line["query_string"] == case.query.decode("latin-1")


# -- the distrust switch, traceparent -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def distrusting_edge(hosts: tuple[Server, Server], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    proxy = Edge(tmp_path_factory.mktemp("edge-distrust"), [upstream(h) for h in hosts],
                 options=("--distrust-clients",)).start()
    yield proxy
    assert proxy.stop() == 0


def traceparent(trace_id: str = TRACE_ID) -> bytes:
    return f"traceparent: 00-{trace_id}-{PARENT_ID}-01\r\ntracestate: vendor=opaque,other=1\r\n".encode()


def app_line(hosts: tuple[Server, Server], tracking_id: str) -> dict[str, Any]:
    return wait_until(lambda: next((r for h in hosts for r in access_lines(h) if r["tracking_id"] == tracking_id),
                                   None), f"the app's access line of {tracking_id}")


def test_a_trusting_edge_passes_a_valid_id_and_the_trace_on(edge: Edge, hosts: tuple[Server, Server]) -> None:
    answer = send(edge.port, get(b"order-42:trust", extra=traceparent()))
    assert (answer.status, answer.tracking_id) == (200, "order-42:trust")
    [line] = [r for r in wait_for_lines(edge, {"order-42:trust"}) if r["tracking_id"] == "order-42:trust"]
    assert (line["client_tracking_id"], line["trace_id"]) == ("order-42:trust", TRACE_ID)
    app = app_line(hosts, "order-42:trust")
    assert (app["trace_id"], app["parent_span_id"]) == (TRACE_ID, PARENT_ID)  # traceparent as the client sent it

    # Without a tracking header the app takes a valid traceparent's trace-id, and so does the edge.
    other = "0af7651916cd43dd8448eb211c80319c"
    answer = send(edge.port, get(extra=traceparent(other)))
    assert (answer.status, answer.tracking_id) == (200, other)
    assert app_line(hosts, other)["trace_id"] == other


def test_a_distrusting_edge_replaces_every_client_id_and_logs_the_valid_one(
        distrusting_edge: Edge, hosts: tuple[Server, Server]) -> None:
    sent = {b"order-42:distrust": "order-42:distrust", b"bad id": "", None: ""}
    answers = {key: send(distrusting_edge.port, get(key, extra=traceparent()))
               for key in sent}
    records = wait_for_lines(distrusting_edge, {a.tracking_id for a in answers.values()})
    for key, answer in answers.items():
        assert answer.status == 200 and REQUEST_ID.fullmatch(answer.tracking_id), answer  # the edge's own
        [line] = [r for r in records if r["tracking_id"] == answer.tracking_id]
        assert line["client_tracking_id"] == sent[key]
        app = app_line(hosts, answer.tracking_id)
        assert app["trace_id"] == TRACE_ID  # the trace still passes
    assert not [r for h in hosts for r in access_lines(h) if r["tracking_id"] == "order-42:distrust"]


# -- failures at the edge: 504, an upstream stopped under load, all stopped ------------------------------------

def logged_once_by_each(hosts: tuple[Server, ...], tracking_id: str) -> bool:
    return all(ids_of(access_lines(h))[tracking_id] == 1 for h in hosts)


def test_an_upstream_slower_than_the_proxy_timeout_is_a_504_envelope_with_the_id(
        hosts: tuple[Server, Server], tmp_path: Path) -> None:
    # /api/users takes 0.1 s: a 50 ms read timeout always expires first, on each host in turn.
    slow = Edge(tmp_path / "edge", [upstream(h) for h in hosts], edits={"proxy_read_timeout": "50ms"}).start()
    try:
        answers = {sent: send(slow.port, get(sent, path=b"/api/users")) for sent in (b"slow-1", None)}
    finally:
        assert slow.stop() == 0
    for sent, answer in answers.items():
        assert answer.status == 504
        if sent is not None:
            assert answer.tracking_id == sent.decode()
        assert json.loads(answer.body) == {"code": 504, "msg": "gateway timeout: no trackline host answered in time",
                                           "data": {"tracking_id": answer.tracking_id}}
        [line] = [r for r in slow.logs() if r["tracking_id"] == answer.tracking_id]
        assert_edge_line(line)
        assert (line["status_code"], line["upstream_status"]) == (504, 504)
        # The timeout was retried on the other host with the same ID: both apps log it.
        assert sorted(line["upstream_addr"].split(", ")) == sorted(upstream(h) for h in hosts)
        wait_until(partial(logged_once_by_each, hosts, answer.tracking_id), "both apps' lines of the timed-out request")


@pytest.mark.slow
def test_one_upstream_stopped_under_load_then_both(tmp_path: Path) -> None:
    a, b = start_server(tmp_path / "a"), start_server(tmp_path / "b")
    proxy = Edge(tmp_path / "edge", [upstream(a), upstream(b)]).start()
    try:
        with Load(proxy.port, (f"load-{n:06d}" for n in itertools.count()), clients=CLIENTS) as load:
            wait_until(lambda: len(load.answers) >= 300, "300 requests before the stop")
            assert b.stop() == 0
            stopped_at = len(load.answers)
            wait_until(lambda: len(load.answers) >= stopped_at + 300, "300 requests after the stop")
        assert not load.errors, load.errors[:5]
        # No client saw an error: every request got a 200 with its own ID, through the stop.
        assert [a for a in load.answers if (a.status, a.echoed) != (200, a.tracking_id)] == []

        sent = {a.tracking_id for a in load.answers}
        lines = {r["tracking_id"]: r for r in wait_for_lines(proxy, sent)}
        in_a, in_b = ids_of(access_lines(a)), ids_of(access_lines(b))
        for tracking_id in sent:
            assert in_a[tracking_id] + in_b[tracking_id] == 1, tracking_id  # answered once, by one host
        retried = [line for line in lines.values() if ", " in line["upstream_addr"]]
        assert retried, "no request was retried on the other host"
        for line in retried:  # B refused the connection, A answered: with the ID the client got
            assert line["upstream_addr"].split(", ")[-1] == upstream(a) and line["upstream_status"] == 200
            assert in_a[line["tracking_id"]] == 1 and in_b[line["tracking_id"]] == 0

        assert a.stop() == 0
        answers = [send(proxy.port, get(sent)) for sent in (b"both-down", None, b"bad id")]
    finally:
        assert proxy.stop() == 0
        a.stop()
        b.stop()
    lines = {r["tracking_id"]: r for r in proxy.logs()}
    for answer in answers:
        assert answer.status == 502
        assert "application/json" in answer.values("Content-Type")
        assert datetime.fromisoformat(answer.values("X-DateTime")[-1]).tzinfo is not None
        assert json.loads(answer.body) == {"code": 502, "msg": "bad gateway: no trackline host answered",
                                           "data": {"tracking_id": answer.tracking_id}}
        line = lines[answer.tracking_id]
        assert (line["status_code"], line["upstream_status"], line["upstream_response_time"]) == (502, 502, None)
    assert answers[0].tracking_id == "both-down"
    assert all(REQUEST_ID.fullmatch(a.tracking_id) for a in answers[1:])


def test_a_body_above_the_edge_s_limit_is_a_413_envelope_with_the_id(edge: Edge) -> None:
    request = (b"POST /api/jobs HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\nX-Tracking-ID: big-body\r\n"
               b"Content-Type: application/json\r\nContent-Length: 2000000\r\n\r\n")  # nginx answers before the body
    answer = send(edge.port, request)
    assert (answer.status, answer.tracking_ids) == (413, ["big-body"])
    assert json.loads(answer.body) == {"code": 413, "msg": "request entity too large",
                                       "data": {"tracking_id": "big-body"}}
    [line] = [r for r in wait_for_lines(edge, {"big-body"}) if r["tracking_id"] == "big-body"]
    assert (line["status_code"], line["upstream_status"], line["upstream_addr"]) == (413, None, "")
