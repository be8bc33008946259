"""Hostile header and query bytes, sent raw: every log line stays JSON; what the app logs is escaped or exact."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from support.hostile import ANSWERED, REJECTED, Case
from support.http import RawResponse, raw_request
from support.logs import REPLACED, assert_access_line, assert_contract
from support.server import new_server

LOG_NAMES = ("app.log", "access.log", "error.log")

#: Raw requests gunicorn cannot parse at all, with the status it answers.
UNPARSABLE = {
    "not-http": (b"HELLO\r\n\r\n", 400),
    "bad-version": (b"GET /api/names HTTP/7.1\r\nHost: x\r\n\r\n", 400),
    "bad-method": (b"G(E)T /api/names HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "unknown-coding": (b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
}


@dataclass
class Run:
    """What every case got back, and the three log files once the server has stopped."""

    responses: dict[str, RawResponse]
    logs: dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """One server takes every case in turn; its logs are read once it has stopped."""
    server = new_server(tmp_path_factory.mktemp("hostile"))
    try:
        server.start()
        responses = {case.name: raw_request(server.port, case.request()) for case in ANSWERED + REJECTED}
        responses |= {name: raw_request(server.port, request) for name, (request, _) in UNPARSABLE.items()}
    finally:
        assert server.stop() == 0
    return Run(responses, {name: server.logs(name) for name in LOG_NAMES})


def test_every_line_of_every_file_is_json_with_contract_fields(run: Run) -> None:
    for name in LOG_NAMES:
        assert run.logs[name], name
        for record in run.logs[name]:
            assert_contract(record)
    for record in run.logs["access.log"]:
        assert_access_line(record)


@pytest.mark.parametrize("case", ANSWERED, ids=lambda c: c.name)
def test_app_answers_and_logs_the_values_exactly_or_escaped(run: Run, case: Case) -> None:
    response = run.responses[case.name]
    assert response.status == 200
    tracking_id = response.headers["X-Tracking-ID"]
    [access] = [r for r in run.logs["access.log"] if r["tracking_id"] == tracking_id]
    sent = {name: value.decode("latin-1") for name, value in case.headers.items()}  # WSGI's decoding
    assert access["user_agent"] == sent.get("User-Agent")
    assert access["referer"] == sent.get("Referer")
    assert access["query_string"] == case.query.decode("latin-1")
    assert access["status_code"] == 200

    app = [r for r in run.logs["app.log"] if r["tracking_id"] == tracking_id]
    if "X-Tracking-ID" not in sent:
        assert app == []
        return
    assert uuid.UUID(tracking_id).version == 4  # a fresh ID, never the hostile one
    [warning] = app
    assert (warning["level"], warning["message"]) == ("WARNING", REPLACED)
    logged = warning["rejected_tracking_id"]
    assert logged.isascii() and logged.isprintable(), logged
    assert logged.encode().decode("unicode_escape") == sent["X-Tracking-ID"][:64]  # escaped, truncated
    assert warning["rejected_length"] == len(sent["X-Tracking-ID"])


@pytest.mark.parametrize("case", REJECTED, ids=lambda c: c.name)
def test_gunicorn_rejections_get_a_tracking_id_the_envelope_and_a_json_warning(run: Run, case: Case) -> None:
    status, detail = case.rejected
    response = run.responses[case.name]
    assert response.status == status
    tracking_id = response.headers["X-Tracking-ID"]
    assert uuid.UUID(tracking_id).version == 4  # a fresh ID, never the hostile one
    assert datetime.fromisoformat(response.headers["X-DateTime"]).tzinfo is not None
    assert response.headers["Content-Type"] == "application/json"
    body = json.loads(response.body)
    assert (body["code"], body["data"]) == (status, None)
    detail = detail.format(next(iter(case.headers), "").upper())
    reason, _, said = body["msg"].partition(": ")  # "bad request: <gunicorn's detail>"
    assert reason in ("bad request", "uri too long", "request header fields too large") and detail in said

    [warning] = [r for r in run.logs["error.log"] if r["tracking_id"] == tracking_id]
    assert (warning["level"], warning["logger"]) == ("WARNING", "gunicorn.error")
    assert warning["message"].startswith(f"Invalid request from ip=127.0.0.1: {detail}")
    assert warning["trace_id"] == tracking_id.replace("-", "")  # a new trace, its trace-id the new UUID4's digits
    [access] = [r for r in run.logs["access.log"] if r["tracking_id"] == tracking_id]
    assert (access["status_code"], access["request_path"]) == (status, "/api/names" if case.parsed else None)
    if not case.parsed:  # trackline's line: what it sent
        assert (access["response_length"], access["remote_addr"]) == (len(response.body), "127.0.0.1")


def test_every_answered_response_has_exactly_one_access_line_with_its_status(run: Run) -> None:
    for name, (_, status) in UNPARSABLE.items():
        assert run.responses[name].status == status, name
    access = {}
    for record in run.logs["access.log"]:
        assert record["tracking_id"] not in access, f"two access lines for {record['tracking_id']}"
        access[record["tracking_id"]] = record["status_code"]
    for name, response in run.responses.items():
        assert access.get(response.headers["X-Tracking-ID"]) == response.status, name


def test_invalid_request_warnings_and_error_access_lines_are_the_rejections_only(run: Run) -> None:
    rejected_ids = {run.responses[name].headers["X-Tracking-ID"] for name in [c.name for c in REJECTED] + [*UNPARSABLE]}
    assert len(rejected_ids) == len(REJECTED) + len(UNPARSABLE)
    warnings = [r["tracking_id"] for r in run.logs["error.log"] if r["message"].startswith("Invalid request from")]
    assert sorted(warnings) == sorted(rejected_ids)
    for access in run.logs["access.log"]:
        if access["status_code"] >= 400:
            assert access["tracking_id"] in rejected_ids, access


LIMIT = 512 * 1024


def chunked(body: bytes, size: int = 64 * 1024) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def test_a_body_over_max_content_length_gets_413_even_where_the_route_never_reads_it(make_server: Any) -> None:
    server = make_server()
    (server.conf_dir / "app.yaml").write_text(f"MAX_CONTENT_LENGTH: {LIMIT}\n")
    server.start()
    head = b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nX-Tracking-ID: %s\r\n"
    sent = {
        "declared-1mb": (head % b"declared-1mb" + b"Content-Length: %d\r\n\r\n" % (2 * LIMIT) + b"x" * 2 * LIMIT, 413),
        "chunked-1mb": (head % b"chunked-1mb" + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(b"x" * 2 * LIMIT), 413),
        "declared-small": (head % b"declared-small" + b"Content-Length: 3\r\n\r\nabc", 202),
        "chunked-small": (head % b"chunked-small" + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(b"abc"), 202),
    }
    for name, (request, status) in sent.items():
        response = raw_request(server.port, request)
        assert response.status == status, (name, response.body[:200])
        assert response.headers["X-Tracking-ID"] == name
        if status == 413:
            assert json.loads(response.body) == {"code": 413, "msg": "POST /api/jobs request entity too large",
                                                 "data": None}
    assert server.stop() == 0
    access = {r["tracking_id"]: r["status_code"] for r in server.logs("access.log")}
    assert {name: access.get(name) for name in sent} == {name: status for name, (_, status) in sent.items()}
    started = {r["tracking_id"] for r in server.logs("app.log") if r["message"] == "job started"}
    assert started & set(sent) == {"declared-small", "chunked-small"}  # the refused ones never ran
