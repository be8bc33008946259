"""W3C Trace Context Level 2: parsing and output to the letter (cases from the spec and its test suite,
github.com/w3c/trace-context test/test.py), and what a request logs and sends downstream."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient

from support.logs import read_json_lines
from trackline import propagation
from trackline.demo import create_app
from trackline.responses import JsonResponse
from trackline.tracecontext import TraceContext, new_trace, parse_traceparent, parse_tracestate, trace_id_of

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
VALID = f"00-{TRACE_ID}-{PARENT_ID}-01"
SPAN = re.compile(r"[0-9a-f]{16}")
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")

log = logging.getLogger("trackline.test.trace")

#: traceparent -> the output flags of a valid one (trace-id and parent-id are TRACE_ID, PARENT_ID), or None.
TRACEPARENTS: dict[str, tuple[str, str | None]] = {
    "v00-sampled": (VALID, "01"),
    "v00-not-sampled": (f"00-{TRACE_ID}-{PARENT_ID}-00", "00"),
    "v00-random-flag-kept": (f"00-{TRACE_ID}-{PARENT_ID}-03", "03"),
    "v00-reserved-flags-zeroed": (f"00-{TRACE_ID}-{PARENT_ID}-ff", "03"),
    "v00-reserved-flag-only": (f"00-{TRACE_ID}-{PARENT_ID}-08", "00"),
    "v00-ows-around": (f" \t{VALID}\t ", "01"),
    "v01": (f"01-{TRACE_ID}-{PARENT_ID}-01", "01"),
    "vcc": (f"cc-{TRACE_ID}-{PARENT_ID}-09", "01"),
    "vcc-extra-fields": (f"cc-{TRACE_ID}-{PARENT_ID}-01-what-the-future-will-be-like", "01"),
    "vfe-empty-extra-field": (f"fe-{TRACE_ID}-{PARENT_ID}-00-", "00"),
    # invalid: restart the trace
    "v00-extra-field": (f"00-{TRACE_ID}-{PARENT_ID}-01-what-the-future-will-be-like", None),
    "v00-trailing-dash": (f"00-{TRACE_ID}-{PARENT_ID}-01-", None),
    "v00-trailing-dot": (f"00-{TRACE_ID}-{PARENT_ID}-01.", None),
    "vcc-glued-extra": (f"cc-{TRACE_ID}-{PARENT_ID}-01.what-the-future-will-be-like", None),
    "vcc-short": (f"cc-{TRACE_ID}-{PARENT_ID}-1", None),
    "vff": (f"ff-{TRACE_ID}-{PARENT_ID}-01", None),
    "version-uppercase": (f"0A-{TRACE_ID}-{PARENT_ID}-01", None),
    "version-illegal-char": (f".0-{TRACE_ID}-{PARENT_ID}-01", None),
    "version-one-digit": (f"0-{TRACE_ID}-{PARENT_ID}-01", None),
    "version-three-digits": (f"000-{TRACE_ID}-{PARENT_ID}-01", None),
    "trace-id-uppercase": (f"00-{TRACE_ID.upper()}-{PARENT_ID}-01", None),
    "trace-id-all-zero": (f"00-{'0' * 32}-{PARENT_ID}-01", None),
    "trace-id-short": (f"00-{TRACE_ID[:-1]}-{PARENT_ID}-01", None),
    "trace-id-long": (f"00-{TRACE_ID}0-{PARENT_ID}-01", None),
    "trace-id-illegal-char": (f"00-{TRACE_ID[:-1]}.-{PARENT_ID}-01", None),
    "parent-id-uppercase": (f"00-{TRACE_ID}-{PARENT_ID.upper()}-01", None),
    "parent-id-all-zero": (f"00-{TRACE_ID}-{'0' * 16}-01", None),
    "parent-id-short": (f"00-{TRACE_ID}-{PARENT_ID[:-1]}-01", None),
    "parent-id-long": (f"00-{TRACE_ID}-{PARENT_ID}a-01", None),
    "parent-id-illegal-char": (f"00-{TRACE_ID}-.{PARENT_ID[1:]}-01", None),
    "flags-uppercase": (f"00-{TRACE_ID}-{PARENT_ID}-0A", None),
    "flags-short": (f"00-{TRACE_ID}-{PARENT_ID}-1", None),
    "flags-long": (f"00-{TRACE_ID}-{PARENT_ID}-001", None),
    "flags-illegal-char": (f"00-{TRACE_ID}-{PARENT_ID}-.0", None),
    "underscore-separators": (f"00_{TRACE_ID}_{PARENT_ID}_01", None),
    "missing-field": (f"00-{TRACE_ID}-{PARENT_ID}", None),
    "two-headers-joined": (f"{VALID},00-{'1' * 32}-{PARENT_ID}-01", None),
    "empty": ("", None),
    "garbage": ("<script>alert(1)</script>", None),
}


@pytest.mark.parametrize(("value", "flags"), TRACEPARENTS.values(), ids=TRACEPARENTS.keys())
def test_traceparent_parsing_and_output(value, flags):
    trace = parse_traceparent(value)
    if flags is None:
        assert trace is None
        return
    assert isinstance(trace, TraceContext)
    assert (trace.trace_id, trace.parent_id, trace.flags) == (TRACE_ID, PARENT_ID, flags)
    assert SPAN.fullmatch(trace.span_id) and trace.span_id not in (PARENT_ID, "0" * 16)
    first, second = trace.child(), trace.child()  # two outgoing calls: two child spans of this one
    assert first.traceparent() == f"00-{TRACE_ID}-{first.span_id}-{flags}"
    assert second.traceparent() == f"00-{TRACE_ID}-{second.span_id}-{flags}"
    assert first.parent_id == second.parent_id == trace.span_id
    assert len({first.span_id, second.span_id, trace.span_id}) == 3


def test_missing_traceparent_is_no_trace():
    assert parse_traceparent(None) is None


def test_each_request_gets_its_own_span():
    assert len({parse_traceparent(VALID).span_id for _ in range(20)}) == 20


def _members(count: int, width: int, key: str = "k") -> list[str]:
    """``count`` distinct members ``kNN=vvv...`` of ``width`` characters each."""
    return [f"{key}{n:02d}=" + "v" * (width - len(key) - 3) for n in range(count)]


def _exactly(total: int) -> list[str]:
    """Members of 30 characters, the last one shorter, joined by "," exactly ``total`` characters long."""
    members = _members(total // 31, 30)
    rest = total - len(",".join(members)) - 1
    assert rest > 4, "pick another total"
    return [*members, "z=" + "v" * (rest - 2)]


LONG = "big=" + "x" * 200
KEY_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-*/"
VALUE_CHARS = "".join(map(chr, [*range(0x20, 0x2C), *range(0x2D, 0x3D), *range(0x3E, 0x7F)]))

#: tracestate (several headers as the server joins them: with ",") -> what is propagated (None: nothing).
TRACESTATES: dict[str, tuple[str, str | None]] = {
    "one": ("foo=1", "foo=1"),
    "two": ("foo=1,bar=2", "foo=1,bar=2"),
    "headers-combined-in-order": ("foo=1,bar=2,rojo=1,congo=2,baz=3", "foo=1,bar=2,rojo=1,congo=2,baz=3"),
    "spaces-and-tabs-around": ("foo=1 \t , \t bar=2, \t baz=3", "foo=1,bar=2,baz=3"),
    "tabs-and-spaces-around": ("foo=1\t \t,\t \tbar=2,\t \tbaz=3", "foo=1,bar=2,baz=3"),
    "tab-before": ("\tfoo=1", "foo=1"),
    "tab-and-space-both-ends": ("\t foo=1 \t", "foo=1"),
    "empty-members": (",foo=1, ,\t,bar=2,", "foo=1,bar=2"),
    "empty-header-then-one": (",foo=1", "foo=1"),
    "leading-space-of-value-kept": ("foo= 1", "foo= 1"),
    "all-key-and-value-characters": (f"{KEY_CHARS}={VALUE_CHARS}", f"{KEY_CHARS}={VALUE_CHARS}"),
    "vendor-keys-with-at": ("foo@=1,foo@@bar=1,t@vvv=2,bar=2", "foo@=1,foo@@bar=1,t@vvv=2,bar=2"),
    "key-256-characters": ("z" * 256 + "=1", "z" * 256 + "=1"),
    "vendor-key-256-characters": (f"foo=1,{'t' * 241}@{'v' * 14}=1", f"foo=1,{'t' * 241}@{'v' * 14}=1"),
    "32-members": (",".join(_members(32, 8)), ",".join(_members(32, 8))),
    "exactly-512": (",".join(_exactly(512)), ",".join(_exactly(512))),
    "600-characters-trimmed-from-the-end": (",".join(_exactly(600)), ",".join(_members(16, 30))),
    "long-member-removed-first": (",".join([LONG, *_members(12, 30)]), ",".join(_members(12, 30))),
    "right-most-long-member-first": (",".join([LONG, "huge=" + "y" * 250, *_members(4, 30)]),
                                     ",".join([LONG, *_members(4, 30)])),
    "duplicate-key-same-value-kept-once": ("foo=1,foo=1", "foo=1"),
    "duplicate-key-left-most-kept": ("foo=1,bar=2,foo=2", "foo=1,bar=2"),
    # invalid: dropped whole
    "empty": ("", None),
    "only-whitespace-members": (" ,\t, ", None),
    "33-members": (",".join(_members(33, 8)), None),
    "33-members-one-a-duplicate": (",".join([*_members(32, 8), "k00=v"]), None),
    "key-with-space": ("foo =1", None),
    "key-uppercase": ("FOO=1", None),
    "key-with-dot": ("foo.bar=1", None),
    "key-starting-with-at": ("@foo=1,bar=2", None),
    "key-257-characters": ("foo=1," + "z" * 257 + "=1", None),
    "value-with-equals": ("foo=bar=baz", None),
    "value-empty": ("foo=,bar=3", None),
    "value-with-tab": ("foo=a\tb", None),
    "value-257-characters": ("foo=" + "v" * 257, None),
    "value-non-ascii": ("foo=caf\u00e9", None),
    "no-equals": ("foo", None),
}


@pytest.mark.parametrize(("value", "forwarded"), TRACESTATES.values(), ids=TRACESTATES.keys())
def test_tracestate_parsing_and_output(value, forwarded):
    assert parse_tracestate(value) == forwarded
    if forwarded is not None:
        assert len(forwarded) <= 512
    trace = parse_traceparent(VALID, value)
    assert trace is not None and trace.child().headers().get("tracestate") == forwarded


@pytest.mark.parametrize("value", [v for v, flags in TRACEPARENTS.values() if flags is None][:6])
def test_tracestate_without_a_valid_traceparent_is_ignored(value):
    assert parse_traceparent(value, "foo=1") is None


def test_new_trace_is_a_root_span_with_the_random_flag():
    trace = new_trace()
    assert re.fullmatch(r"[0-9a-f]{32}", trace.trace_id) and trace.trace_id != "0" * 32
    assert trace.parent_id is None and trace.flags == "03"
    assert new_trace(sampled=False).flags == "02"
    assert new_trace(TRACE_ID).trace_id == TRACE_ID
    assert trace.log_fields() == {"trace_id": trace.trace_id, "span_id": trace.span_id, "trace_flags": "03"}
    for bad in ("0" * 32, TRACE_ID.upper(), TRACE_ID[:-1]):
        with pytest.raises(ValueError, match="not a trace-id"):
            new_trace(bad)


def test_trace_id_of_a_uuid4_is_its_hex_digits():
    value = uuid.uuid4()
    assert trace_id_of(str(value)) == value.hex
    assert trace_id_of(str(value).upper()) == value.hex
    assert trace_id_of(str(uuid.uuid1())) is None  # not random: a new trace-id instead
    assert trace_id_of("order-42") is None


# What a request logs and sends downstream (the Flask test client).


def _client(config: dict[str, Any] | None = None) -> FlaskClient:
    """The trackline app plus ``GET /probe``: logs one line, answers with two calls' ``outgoing_headers()``."""
    app = create_app(config)

    @app.get("/probe")
    def probe() -> JsonResponse:
        log.info("probe")
        return JsonResponse(data=[propagation.outgoing_headers(), propagation.outgoing_headers()])

    return app.test_client()


def _probe(client: FlaskClient, headers: dict[str, str]) -> tuple[str, list[dict[str, str]]]:
    """The response's tracking ID and the headers two outgoing calls of the request would send."""
    with client.get("/probe", headers=headers) as response:
        assert response.status_code == 200
        return response.headers["X-Tracking-ID"], response.json["data"]


def _probe_line(app_log) -> dict[str, Any]:
    (record,) = [r for r in read_json_lines(app_log) if r["message"] == "probe"]
    return record


def _child_of(record: dict[str, Any], outgoing: dict[str, str], flags: str) -> str:
    """Check ``outgoing``'s traceparent is a child of ``record``'s span with ``flags``; the child's span-id."""
    match = TRACEPARENT.fullmatch(outgoing["traceparent"])
    assert match is not None, outgoing
    trace_id, parent_id, sent_flags = match.groups()
    assert (trace_id, sent_flags) == (record["trace_id"], flags)
    assert parent_id != record["span_id"] and SPAN.fullmatch(parent_id)
    return parent_id


@pytest.mark.parametrize(("value", "flags"), [
    (VALID, "01"), (f"cc-{TRACE_ID}-{PARENT_ID}-01-extra", "01"), (f"00-{TRACE_ID}-{PARENT_ID}-ff", "03"),
], ids=["v00", "future-version", "reserved-flags"])
def test_valid_traceparent_is_continued_with_a_child_span_per_call(app_log, value, flags):
    tracking_id, (first, second) = _probe(_client(), {"traceparent": value})
    assert tracking_id == TRACE_ID
    record = _probe_line(app_log)
    assert (record["tracking_id"], record["trace_id"], record["parent_span_id"]) == (TRACE_ID, TRACE_ID, PARENT_ID)
    assert SPAN.fullmatch(record["span_id"]) and record["span_id"] != PARENT_ID
    assert _child_of(record, first, flags) != _child_of(record, second, flags)
    assert first["X-Tracking-ID"] == TRACE_ID and set(first) == {"X-Tracking-ID", "traceparent"}
    assert record["trace_flags"] == flags  # OTel's log data model: beside trace_id and span_id


def test_request_without_traceparent_starts_a_trace_from_its_generated_id(app_log):
    tracking_id, (first, second) = _probe(_client(), {})
    record = _probe_line(app_log)
    assert record["trace_id"] == uuid.UUID(tracking_id).hex  # one value finds both
    assert SPAN.fullmatch(record["span_id"]) and "parent_span_id" not in record
    assert _child_of(record, first, "03") != _child_of(record, second, "03")


def test_trace_sampled_false_starts_unsampled_traces_and_keeps_the_callers_flag(app_log):
    client = _client({"TRACE_SAMPLED": False})
    _, (outgoing, _) = _probe(client, {})
    assert outgoing["traceparent"].endswith("-02")
    _, (outgoing, _) = _probe(client, {"traceparent": VALID})
    assert outgoing["traceparent"].endswith("-01")


def test_a_sent_uuid4_tracking_id_is_the_new_trace_id_and_another_id_gets_a_random_one(app_log):
    sent = str(uuid.uuid4()).upper()
    client = _client()
    assert _probe(client, {"X-Tracking-ID": sent})[0] == sent
    assert _probe(client, {"X-Tracking-ID": "order-42"})[0] == "order-42"
    uuid_line, other_line = [r for r in read_json_lines(app_log) if r["message"] == "probe"]
    assert uuid_line["trace_id"] == uuid.UUID(sent).hex
    assert re.fullmatch(r"[0-9a-f]{32}", other_line["trace_id"]) and other_line["trace_id"] != uuid_line["trace_id"]


@pytest.mark.parametrize(("tracestate", "forwarded"), [
    ("vendor=abc, \tother=1", "vendor=abc,other=1"),
    ("bad\tstate", None),
    (",".join(_members(33, 8)), None),
    (",".join(_exactly(600)), ",".join(_members(16, 30))),
], ids=["tabs-and-spaces", "invalid", "33-members", "600-characters"])
def test_tracestate_is_forwarded_normalized_or_not_at_all(app_log, tracestate, forwarded):
    _, (outgoing, _) = _probe(_client(), {"traceparent": VALID, "tracestate": tracestate})
    assert outgoing.get("tracestate") == forwarded
    assert _probe_line(app_log)["parent_span_id"] == PARENT_ID


def test_tracestate_without_traceparent_is_not_passed_on(app_log):
    _, (outgoing, _) = _probe(_client(), {"tracestate": "vendor=abc"})
    assert "tracestate" not in outgoing
    assert TRACEPARENT.fullmatch(outgoing["traceparent"])  # a new trace


RESTARTS = ["v00-extra-field", "vff", "trace-id-uppercase", "trace-id-all-zero", "parent-id-all-zero",
            "flags-short", "two-headers-joined", "garbage"]


@pytest.mark.parametrize("name", RESTARTS)
def test_invalid_traceparent_restarts_the_trace_and_is_never_echoed(app_log, name):
    value = TRACEPARENTS[name][0]
    with _client().get("/probe", headers={"traceparent": value, "tracestate": "foo=1"}) as response:
        tracking_id = response.headers["X-Tracking-ID"]
        (outgoing, _) = response.json["data"]
        echoed = response.get_data(as_text=True) + "".join(f"{k}: {v}\n" for k, v in response.headers.items())
    uuid.UUID(tracking_id)  # generated, not derived from the rejected header
    records = read_json_lines(app_log)
    (warning,) = [r for r in records if r["level"] == "WARNING"]
    assert warning["message"] == "ignored invalid traceparent"
    assert warning["rejected_length"] == len(value) and warning["tracking_id"] == tracking_id
    record = _probe_line(app_log)
    assert record["trace_id"] == uuid.UUID(tracking_id).hex and "parent_span_id" not in record
    _child_of(record, outgoing, "03")
    assert set(outgoing) == {"X-Tracking-ID", "traceparent"}  # the tracestate went with the invalid traceparent
    text = app_log.read_text(encoding="utf-8") + "".join(map(str, outgoing.values()))
    for shown in (value, *(part for part in value.split("-") if len(part) >= 16)):
        assert shown.strip() not in text and shown.strip() not in echoed


def test_tracking_id_from_traceparent_can_be_turned_off(app_log):
    tracking_id, (outgoing, _) = _probe(_client({"TRACKING_ID_FROM_TRACEPARENT": False}), {"traceparent": VALID})
    uuid.UUID(tracking_id)
    record = _probe_line(app_log)
    assert (record["tracking_id"], record["trace_id"]) == (tracking_id, TRACE_ID)
    assert outgoing["X-Tracking-ID"] == tracking_id
    _child_of(record, outgoing, "01")


def test_tracking_header_wins_over_traceparent(app_log):
    tracking_id, (outgoing, _) = _probe(_client(), {"X-Tracking-ID": "mine-1", "traceparent": VALID})
    assert tracking_id == "mine-1"
    record = _probe_line(app_log)
    assert (record["tracking_id"], record["trace_id"]) == ("mine-1", TRACE_ID)
    assert outgoing["X-Tracking-ID"] == "mine-1"
    _child_of(record, outgoing, "01")


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
    tracking_id, (outgoing, _) = _probe(client, {})
    first, second = [r for r in read_json_lines(app_log) if r["message"] == "probe"]
    assert first["trace_id"] == TRACE_ID
    assert second["trace_id"] == uuid.UUID(tracking_id).hex and "parent_span_id" not in second
    assert outgoing["X-Tracking-ID"] == tracking_id and TRACE_ID not in outgoing["traceparent"]
