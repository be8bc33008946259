"""W3C traceparent: parsing per the spec, and what a request with one logs and sends downstream."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient

from conftest import read_json_lines
from trackline import propagation
from trackline.app import create_app
from trackline.responses import JsonResponse
from trackline.tracecontext import TraceContext, parse_traceparent

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
VALID = f"00-{TRACE_ID}-{PARENT_ID}-01"
SPAN = re.compile(r"[0-9a-f]{16}")

log = logging.getLogger("trackline.test.trace")


@pytest.mark.parametrize(("value", "flags"), [
    (VALID, "01"),
    (f"00-{TRACE_ID}-{PARENT_ID}-00", "00"),
    (f"01-{TRACE_ID}-{PARENT_ID}-03", "03"),
    (f"cc-{TRACE_ID}-{PARENT_ID}-09-what-ever-comes-later", "09"),
], ids=["v00", "v00-not-sampled", "future-version", "future-version-extra-fields"])
def test_valid_traceparent_starts_a_new_span_of_the_callers_trace(value, flags):
    trace = parse_traceparent(value)
    assert isinstance(trace, TraceContext)
    assert (trace.trace_id, trace.parent_id, trace.flags) == (TRACE_ID, PARENT_ID, flags)
    assert SPAN.fullmatch(trace.span_id) and trace.span_id not in (PARENT_ID, "0" * 16)
    assert trace.child_traceparent() == f"00-{TRACE_ID}-{trace.span_id}-{flags}"


def test_each_request_gets_its_own_span():
    assert len({parse_traceparent(VALID).span_id for _ in range(20)}) == 20


INVALID = {
    "version-non-hex": f"0g-{TRACE_ID}-{PARENT_ID}-01",
    "version-ff": f"ff-{TRACE_ID}-{PARENT_ID}-01",
    "version-one-digit": f"0-{TRACE_ID}-{PARENT_ID}-01",
    "version-uppercase": f"0A-{TRACE_ID}-{PARENT_ID}-01",
    "trace-id-short": f"00-{TRACE_ID[:-1]}-{PARENT_ID}-01",
    "trace-id-long": f"00-{TRACE_ID}0-{PARENT_ID}-01",
    "trace-id-uppercase": f"00-{TRACE_ID.upper()}-{PARENT_ID}-01",
    "trace-id-non-hex": f"00-{TRACE_ID[:-1]}g-{PARENT_ID}-01",
    "trace-id-all-zero": f"00-{'0' * 32}-{PARENT_ID}-01",
    "parent-id-short": f"00-{TRACE_ID}-{PARENT_ID[:-1]}-01",
    "parent-id-long": f"00-{TRACE_ID}-{PARENT_ID}a-01",
    "parent-id-non-hex": f"00-{TRACE_ID}-{PARENT_ID[:-1]}x-01",
    "parent-id-all-zero": f"00-{TRACE_ID}-{'0' * 16}-01",
    "flags-short": f"00-{TRACE_ID}-{PARENT_ID}-1",
    "flags-long": f"00-{TRACE_ID}-{PARENT_ID}-011",
    "flags-non-hex": f"00-{TRACE_ID}-{PARENT_ID}-0x",
    "v00-extra-field": f"00-{TRACE_ID}-{PARENT_ID}-01-extra",
    "v00-trailing-dash": f"00-{TRACE_ID}-{PARENT_ID}-01-",
    "future-version-glued-extra": f"cc-{TRACE_ID}-{PARENT_ID}-01x",
    "underscore-separators": f"00_{TRACE_ID}_{PARENT_ID}_01",
    "missing-field": f"00-{TRACE_ID}-{PARENT_ID}",
    "empty": "",
    "garbage": "<script>alert(1)</script>",
}


@pytest.mark.parametrize("value", INVALID.values(), ids=INVALID.keys())
def test_invalid_traceparent_is_rejected(value):
    assert parse_traceparent(value) is None


def test_missing_traceparent_is_no_trace():
    assert parse_traceparent(None) is None


def _client(config: dict[str, Any] | None = None) -> FlaskClient:
    """The trackline app plus ``GET /probe``: logs one line, answers with ``outgoing_headers()``."""
    app = create_app(config)

    @app.get("/probe")
    def probe() -> JsonResponse:
        log.info("probe")
        return JsonResponse(data=propagation.outgoing_headers())

    return app.test_client()


def _probe(client: FlaskClient, headers: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The response's tracking ID and the outgoing headers the request would send downstream."""
    with client.get("/probe", headers=headers) as response:
        assert response.status_code == 200
        return response.headers["X-Tracking-ID"], response.json["data"]


def _probe_lines(app_log) -> list[dict[str, Any]]:
    return [r for r in read_json_lines(app_log) if r["message"] == "probe"]


@pytest.mark.parametrize("value", [VALID, f"cc-{TRACE_ID}-{PARENT_ID}-01-extra"], ids=["v00", "future-version"])
def test_valid_traceparent_is_logged_and_a_child_is_propagated(app_log, value):
    tracking_id, outgoing = _probe(_client(), {"traceparent": value})
    assert tracking_id == TRACE_ID
    (record,) = _probe_lines(app_log)
    assert record["tracking_id"] == TRACE_ID and record["trace_id"] == TRACE_ID
    assert SPAN.fullmatch(record["span_id"]) and record["span_id"] != PARENT_ID
    assert outgoing == {"X-Tracking-ID": TRACE_ID, "traceparent": f"00-{TRACE_ID}-{record['span_id']}-01"}


@pytest.mark.parametrize(("tracestate", "forwarded"), [
    ("vendor=abc,other=1", "vendor=abc,other=1"),
    ("bad\tstate", None),
    ("x" * 513, None),
], ids=["kept", "control-char", "too-long"])
def test_tracestate_is_passed_on_only_when_printable_and_bounded(app_log, tracestate, forwarded):
    _, outgoing = _probe(_client(), {"traceparent": VALID, "tracestate": tracestate})
    assert outgoing.get("tracestate") == forwarded
    (record,) = _probe_lines(app_log)
    assert record["parent_span_id"] == PARENT_ID


def test_tracestate_without_traceparent_is_not_passed_on(app_log):
    _, outgoing = _probe(_client(), {"tracestate": "vendor=abc"})
    assert "tracestate" not in outgoing and "traceparent" not in outgoing


@pytest.mark.parametrize("value", [
    INVALID["trace-id-uppercase"], INVALID["trace-id-all-zero"], INVALID["parent-id-all-zero"],
    INVALID["v00-extra-field"], INVALID["garbage"],
], ids=["uppercase", "zero-trace-id", "zero-parent-id", "v00-extra-field", "garbage"])
def test_invalid_traceparent_is_ignored_and_never_echoed(app_log, value):
    with _client().get("/probe", headers={"traceparent": value}) as response:
        tracking_id = response.headers["X-Tracking-ID"]
        outgoing = response.json["data"]
        echoed = response.get_data(as_text=True) + "".join(f"{k}: {v}\n" for k, v in response.headers.items())
    uuid.UUID(tracking_id)  # generated, not derived from the rejected header
    assert outgoing == {"X-Tracking-ID": tracking_id}
    records = read_json_lines(app_log)
    (warning,) = [r for r in records if r["level"] == "WARNING"]
    assert warning["message"] == "ignored invalid traceparent"
    assert warning["rejected_length"] == len(value) and warning["tracking_id"] == tracking_id
    assert not [r for r in records if "trace_id" in r or "span_id" in r]
    text = app_log.read_text(encoding="utf-8")
    for shown in (value, *(part for part in value.split("-") if len(part) >= 16)):
        assert shown not in text and shown not in echoed


def test_tracking_id_from_traceparent_can_be_turned_off(app_log):
    tracking_id, outgoing = _probe(_client({"TRACKING_ID_FROM_TRACEPARENT": False}), {"traceparent": VALID})
    uuid.UUID(tracking_id)
    (record,) = _probe_lines(app_log)
    assert (record["tracking_id"], record["trace_id"]) == (tracking_id, TRACE_ID)
    assert outgoing == {"X-Tracking-ID": tracking_id, "traceparent": f"00-{TRACE_ID}-{record['span_id']}-01"}


def test_tracking_header_wins_over_traceparent(app_log):
    tracking_id, outgoing = _probe(_client(), {"X-Tracking-ID": "mine-1", "traceparent": VALID})
    assert tracking_id == "mine-1"
    (record,) = _probe_lines(app_log)
    assert (record["tracking_id"], record["trace_id"]) == ("mine-1", TRACE_ID)
    assert outgoing == {"X-Tracking-ID": "mine-1", "traceparent": f"00-{TRACE_ID}-{record['span_id']}-01"}


def test_invalid_tracking_header_falls_back_to_the_trace_id(app_log):
    tracking_id, _ = _probe(_client(), {"X-Tracking-ID": "bad id!", "traceparent": VALID})
    assert tracking_id == TRACE_ID
    assert [r["message"] for r in read_json_lines(app_log) if r["level"] == "WARNING"] == [
        "replaced invalid tracking ID from X-Tracking-ID"
    ]


def test_trace_does_not_leak_into_the_next_request(app_log):
    """The same thread (as a keep-alive greenlet would) serves a traced request, then an untraced one."""
    client = _client()
    _probe(client, {"traceparent": VALID})
    tracking_id, outgoing = _probe(client, {})
    assert outgoing == {"X-Tracking-ID": tracking_id}
    first, second = _probe_lines(app_log)
    assert first["trace_id"] == TRACE_ID
    assert "trace_id" not in second and "span_id" not in second and second["tracking_id"] == tracking_id
