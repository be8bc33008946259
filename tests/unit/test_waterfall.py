"""`trackline trace ID --waterfall / --json / --html`: the span tree (trackline.reader.spans), from lines as each
writer logs them (the edge's nginx, two trackline services, an outgoing call, a Celery task and its retry, in every
field preset); the terminal waterfall (trackline.reader.waterfall); the HTML page (trackline.reader.waterfall_html);
the `trace` options that ask for them."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from support.paths import TRACKLINE
from trackline.reader.spans import CALL, EDGE, REQUEST, SPAN, TASK, Span, Tree, build, tree_json
from trackline.reader.trace import Match, directory_bases, find
from trackline.reader.waterfall import ASCII, UNICODE, clean, emit, glyphs_for, render, wants_colour
from trackline.reader.waterfall_html import SCRIPT, STYLE, embed, page

ID = "relay-7f3a"
TRACE = "0af7651916cd43dd8448eb211c80319c"
BASE = datetime(2026, 1, 17, 8, 44, 0, tzinfo=UTC)
A_SPAN, B_SPAN, CALL_SPAN, TASK_SPAN, RETRY_SPAN = ("a" * 16, "b" * 16, "c" * 16, "d" * 16, "e" * 16)
PUBLISH, REPUBLISH = "1" * 16, "2" * 16
JOB = "5d3c0e6f9b7a4e0c8d2f1a3b4c5d6e7f"


def at(ms: float) -> str:
    """A timestamp ``ms`` after BASE, cut to milliseconds as the formatter writes it."""
    moment = BASE + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds")


def line(ms: float, message: str, span: str | None = None, logger: str = "trackline.api", level: str = "INFO",
         **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"@timestamp": at(ms), "level": level, "logger": logger, "tracking_id": ID,
                              "message": message, "pid": 7}
    if span is not None:
        record.update(trace_id=TRACE, span_id=span, trace_flags="03")
    record.update(fields)
    return record


def access(ms: float, path: str, status: int, seconds: float, span: str | None, **fields: Any) -> dict[str, Any]:
    path, _, query = path.partition("?")
    return line(ms, f"GET {path} {status}", span, "gunicorn.access", request_method="GET", request_path=path,
                query_string=query, status_code=status, request_time=seconds, **fields)


def edge_line(ms: float, status: int, seconds: float) -> dict[str, Any]:
    return {"@timestamp": at(ms), "level": "INFO", "logger": "nginx.access", "tracking_id": ID,
            "message": f"GET /api/relay {status}", "pid": 99, "remote_addr": "203.0.113.7", "protocol": "HTTP/1.1",
            "host": "edge", "request_method": "GET", "request_path": "/api/relay", "query_string": "calls=1",
            "status_code": status, "response_length": 80, "referer": "", "user_agent": "curl", "request_time": seconds,
            "upstream_addr": "127.0.0.1:8001", "upstream_status": status, "upstream_response_time": seconds,
            "client_tracking_id": ID, "trace_id": ""}


def task_line(ms: float, message: str, span: str, parent: str, logger: str = "trackline.jobs",
              **fields: Any) -> dict[str, Any]:
    return line(ms, message, span, logger, parent_span_id=parent, task_id=JOB, task_name="trackline.jobs.run",
                parent_task_id=None, **fields)


def chain() -> dict[str, list[dict[str, Any]]]:
    """The files of one request: edge -> A (one call to B, a job queued on Celery, retried once) -> ..."""
    return {
        "edge/trackline-access.log": [edge_line(60, 200, 0.058)],
        "a/app.log": [
            line(5, "GET http://b/api/health", CALL_SPAN, "trackline.propagation", parent_span_id=A_SPAN,
                 request_method="GET", url="http://b/api/health"),
            line(31, "downstream answered", A_SPAN),
            line(40, "job queued", A_SPAN, "trackline.jobs", job_id=JOB),
        ],
        "a/access.log": [access(55, "/api/relay?calls=1", 200, 0.0531, A_SPAN)],
        "b/app.log": [line(12, "Health check", B_SPAN, parent_span_id=CALL_SPAN)],
        "b/access.log": [access(30, "/api/health", 200, 0.020, B_SPAN, parent_span_id=CALL_SPAN)],
        "w/worker.log": [
            task_line(70, "job started", TASK_SPAN, PUBLISH),
            task_line(80, f"Task trackline.jobs.run[{JOB}] retry: not yet", TASK_SPAN, PUBLISH,
                      "celery.app.trace", data={"id": JOB}),
            task_line(101, "job started", RETRY_SPAN, REPUBLISH),
            task_line(300, f"Task trackline.jobs.run[{JOB}] succeeded in 0.2s: None", RETRY_SPAN, REPUBLISH,
                      "celery.app.trace", data={"id": JOB, "runtime": 0.2}),
        ],
    }


def matches(files: dict[str, list[dict[str, Any]]]) -> list[Match]:
    found = []
    for name, records in files.items():
        for offset, record in enumerate(records):
            moment = datetime.fromisoformat(next(record[k] for k in ("@timestamp", "timestamp", "time")
                                                 if k in record))
            found.append(Match(moment, f"/logs/{name}", offset, json.dumps(record), record))
    return sorted(found)


def rows(tree: Tree) -> list[tuple[int, str, str, str]]:
    return [(depth, span.kind, span.name, span.link) for depth, span in tree.spans()]


def by_name(tree: Tree, name: str) -> Span:
    [span] = [span for _, span in tree.spans() if span.name == name]
    return span


def test_the_chain_is_one_tree_under_the_edge() -> None:
    tree = build(matches(chain()), ID)
    assert rows(tree) == [
        (0, EDGE, "GET /api/relay?calls=1", "root"),
        (1, REQUEST, "GET /api/relay?calls=1", "edge"),
        (2, CALL, "GET http://b/api/health", "parent_span_id"),
        (3, REQUEST, "GET /api/health", "parent_span_id"),
        (2, TASK, "trackline.jobs.run", "named"),  # the message's span is not logged: "job queued" names it
        (3, TASK, "trackline.jobs.run", "retry"),  # published by the first attempt
    ]
    assert tree.unplaced == []
    assert tree.tracking_ids == [ID] and tree.trace_ids == [TRACE]


def test_times_are_the_logged_ones() -> None:
    tree = build(matches(chain()), ID)
    edge, a = tree.roots[0], tree.roots[0].children[0]
    assert edge.duration == 0.058 and edge.end == BASE + timedelta(milliseconds=60)
    assert edge.start == edge.end - timedelta(seconds=0.058)
    assert a.duration == 0.0531 and a.start == BASE + timedelta(milliseconds=55) - timedelta(seconds=0.0531)
    assert (a.status, edge.status) == ("200", "200")
    assert edge.fields["upstream_addr"] == "127.0.0.1:8001"
    call = a.children[0]
    b = call.children[0]
    assert b.duration == 0.020
    assert call.start == BASE + timedelta(milliseconds=5) and call.end == b.end  # ends with the callee's request
    first, retry = a.children[1], a.children[1].children[0]
    assert (first.status, retry.status) == ("retry", "succeeded")
    assert retry.duration == 0.2 and retry.end == BASE + timedelta(milliseconds=300)
    assert retry.start == retry.end - timedelta(seconds=0.2)
    assert not any(span.open for _, span in tree.spans())


def test_a_span_without_its_end_is_open_ended_and_says_why() -> None:
    files = chain()
    files["w/worker.log"] = files["w/worker.log"][:3]  # the retry's worker was killed: no result line
    files["b/access.log"] = []  # B's worker died mid-request: no access line
    tree = build(matches(files), ID)
    b = by_name(tree, "Health check")
    assert (b.kind, b.open, b.end, b.duration) == (SPAN, True, None, None)
    assert b.open_reason == "no access line or task result: still running, or its process was killed"
    call = by_name(tree, "GET http://b/api/health")
    assert call.open and call.children == [b]  # a call ends with its callee, which has not ended
    [retry] = [span for _, span in tree.spans() if span.span_id == RETRY_SPAN]
    assert retry.open and "still running" in (retry.open_reason or "")
    assert retry.last == BASE + timedelta(milliseconds=101)


def test_lines_without_a_span_are_kept_apart() -> None:
    files = chain()
    files["a/error.log"] = [line(50, "Error handling request /api/relay", level="ERROR", logger="gunicorn.error",
                                 exc_info="Traceback (most recent call last):\nValueError: boom")]
    tree = build(matches(files), ID)
    [lone] = tree.unplaced
    assert lone.message == "Error handling request /api/relay" and lone.error
    assert tree.lines == sum(len(records) for records in files.values())
    assert len(tree_json(tree)["unplaced"]) == 1


def test_a_parent_that_is_not_logged_leaves_a_root_that_says_so() -> None:
    files = chain()
    files["a/app.log"] = files["a/app.log"][:2]  # no "job queued" line: nothing ties the task to the request
    files["edge/trackline-access.log"] = []
    tree = build(matches(files), ID)
    assert [(root.kind, root.link) for root in tree.roots] == [(REQUEST, "root"), (TASK, "missing")]
    assert tree.roots[1].parent_span_id == PUBLISH
    assert [child.link for child in tree.roots[1].children] == ["retry"]


def test_parent_task_id_places_a_subtask_under_its_task() -> None:
    files = chain()
    files["w/worker.log"] = [
        task_line(70, "parent queues a child", TASK_SPAN, PUBLISH),
        line(90, "child runs", "f" * 16, parent_span_id="9" * 16, task_id="child-1", task_name="tests.child",
             parent_task_id=JOB),
    ]
    tree = build(matches(files), ID)
    child = by_name(tree, "tests.child")
    assert child.link == "parent_task_id" and child.parent is not None and child.parent.task_id == JOB


def test_a_request_that_came_with_a_traceparent_is_still_under_its_edge() -> None:
    files = chain()
    files["a/access.log"] = [access(55, "/api/relay?calls=1", 200, 0.0531, A_SPAN, parent_span_id="7" * 16)]
    tree = build(matches(files), ID)
    assert rows(tree)[1] == (1, REQUEST, "GET /api/relay?calls=1", "edge")


def test_with_opentelemetry_a_callee_whose_parent_is_an_unlogged_client_span_is_placed_by_time() -> None:
    """OpenTelemetry's client span of an instrumented HTTP client is not in any line (trackline's call line is in
    the server span then): B's request is placed under the span of its trace that it ran within, and says so."""
    client = "9" * 16
    files = {
        "a/app.log": [line(5, "GET http://b/api/health", A_SPAN, "trackline.propagation", request_method="GET",
                           url="http://b/api/health"), line(31, "downstream answered", A_SPAN)],
        "a/access.log": [access(55, "/api/relay", 200, 0.0531, A_SPAN)],
        "b/app.log": [line(12, "Health check", B_SPAN, parent_span_id=client)],
        "b/access.log": [access(30, "/api/health", 200, 0.020, B_SPAN, parent_span_id=client)],
    }
    tree = build(matches(files), ID)
    assert rows(tree) == [(0, REQUEST, "GET /api/relay", "root"), (1, REQUEST, "GET /api/health", "time")]
    assert "placed by time" in "\n".join(render(tree, 160))


def test_cycles_in_the_lines_do_not_loop() -> None:
    files = {"a/app.log": [line(1, "one", A_SPAN, parent_span_id=B_SPAN),
                           line(2, "two", B_SPAN, parent_span_id=A_SPAN)]}
    tree = build(matches(files), ID)
    assert sorted(span.span_id or "" for _, span in tree.spans()) == [A_SPAN, B_SPAN]


def test_json_is_the_same_tree() -> None:
    tree = build(matches(chain()), ID)
    document = tree_json(tree)
    json.dumps(document)  # serialisable

    def walk(spans: list[dict[str, Any]], depth: int = 0) -> list[tuple[int, str, str, str]]:
        found = []
        for span in spans:
            found.append((depth, span["kind"], span["name"], span["link"]))
            found += walk(span["children"], depth + 1)
        return found

    assert walk(document["spans"]) == rows(tree)
    assert document["counts"] == {"spans": 6, "open": 0, "lines": 11, "unplaced": 0, "errors": 0}
    edge = document["spans"][0]
    assert edge["start_ms"] == 0.1 and edge["duration_ms"] == 58.0  # A started 0.1 ms before (its 53.1 ms)
    assert document["duration_ms"] == 298.1  # from A's start (55 - 53.1 ms) to the task's end (300 ms)


# -- every field preset: the same tree from lines written in ECS, GCP, Datadog and OpenTelemetry names ---------

def _carried(record: dict[str, Any]) -> dict[str, Any]:
    """The span and task fields every preset carries as they are (ECS under labels, OTel under attributes)."""
    return {key: record[key] for key in ("parent_span_id", "task_id", "task_name", "parent_task_id", "job_id", "data")
            if key in record}


def _target(record: dict[str, Any]) -> str:
    """``/path?query`` of an access line."""
    return record["request_path"] + (f"?{record['query_string']}" if record["query_string"] else "")


def _ecs(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"@timestamp": record["@timestamp"], "log.level": record["level"],
                           "message": record["message"], "ecs.version": "8.11.0",
                           "tracking_id": record["tracking_id"], "log": {"logger": record["logger"]}}
    if "span_id" in record:
        out["trace"], out["span"] = {"id": record["trace_id"]}, {"id": record["span_id"]}
    if "status_code" in record:
        out["http"] = {"request": {"method": "GET"}, "response": {"status_code": record["status_code"]}}
        out["url"] = {"path": record["request_path"], **({"query": record["query_string"]}
                                                          if record["query_string"] else {})}
        out["event"] = {"duration": round(record["request_time"] * 1e9)}
    elif "url" in record:
        out["http"], out["url"] = {"request": {"method": "GET"}}, {"full": record["url"]}
    labels = _carried(record)
    if labels:
        out["labels"] = labels
    return out


def _gcp(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"time": record["@timestamp"], "severity": record["level"], "message": record["message"],
                           "logger": record["logger"], "tracking_id": record["tracking_id"]}
    if "span_id" in record:
        out["logging.googleapis.com/trace"] = f"projects/p/traces/{record['trace_id']}"
        out["logging.googleapis.com/spanId"] = record["span_id"]
    if "status_code" in record:
        target = _target(record)
        out["httpRequest"] = {"requestMethod": "GET", "requestUrl": target, "status": record["status_code"],
                              "latency": f"{record['request_time']:.6f}s"}
    elif "url" in record:
        out["httpRequest"] = {"requestMethod": "GET", "requestUrl": record["url"]}
    out.update(_carried(record))
    return out


def _datadog(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"timestamp": record["@timestamp"], "status": record["level"].lower(),
                           "message": record["message"], "logger": {"name": record["logger"]},
                           "tracking_id": record["tracking_id"]}
    if "span_id" in record:
        out.update(trace_id=record["trace_id"], span_id=record["span_id"])
    if "status_code" in record:
        target = _target(record)
        out["http"] = {"method": "GET", "url": target, "url_details": {"path": record["request_path"]},
                       "status_code": record["status_code"]}
        out["duration"] = round(record["request_time"] * 1e9)
    elif "url" in record:
        out["http"] = {"method": "GET", "url": record["url"]}
    out.update(_carried(record))
    return out


def _otel(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"timestamp": record["@timestamp"], "severity_text": record["level"],
                           "severity_number": 9, "body": record["message"], "tracking_id": record["tracking_id"]}
    if "span_id" in record:
        out.update(trace_id=record["trace_id"], span_id=record["span_id"], trace_flags="01")
    attributes: dict[str, Any] = {}
    if "status_code" in record:
        attributes.update({"http.request.method": "GET", "url.path": record["request_path"],
                           "http.response.status_code": record["status_code"],
                           "http.server.request.duration": record["request_time"]})
        if record["query_string"]:
            attributes["url.query"] = record["query_string"]
    elif "url" in record:
        attributes.update({"http.request.method": "GET", "url.full": record["url"]})
    attributes.update(_carried(record))
    out["attributes"] = attributes
    out["instrumentation_scope"] = {"name": record["logger"]}
    return out


@pytest.mark.parametrize("convert", [_ecs, _gcp, _datadog, _otel], ids=["ecs", "gcp", "datadog", "otel"])
def test_every_preset_gives_the_same_tree(convert: Any) -> None:
    files = chain()
    expected = tree_json(build(matches(files), ID))
    # the apps' files in the preset; the edge's nginx lines are always trackline's
    converted = {name: records if name.startswith("edge/") else [convert(record) for record in records]
                 for name, records in files.items()}
    got = tree_json(build(matches(converted), ID))

    def shape(spans: list[dict[str, Any]]) -> list[Any]:
        return [(span["kind"], span["name"], span["link"], span["status"], span["start_ms"], span["duration_ms"],
                 span["span_id"], span["parent_span_id"], len(span["lines"]), shape(span["children"]))
                for span in spans]

    assert shape(got["spans"]) == shape(expected["spans"])


def test_find_then_build_reads_real_files(tmp_path: Path) -> None:
    """From files on disk, as ``trackline trace`` reads them (rotated and all), to the tree."""
    for name, records in chain().items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(record) + "\n" for record in records))
    bases = [base for folder in ("edge", "a", "b", "w") for base in directory_bases(tmp_path / folder)]
    tree = build(find(ID, bases).matches, ID)
    assert rows(tree) == rows(build(matches(chain()), ID))


# -- the terminal waterfall ---------------------------------------------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;]*m")
SPAN_ROW = re.compile(r"\s(\d+\.\d)\s+(≥?\d+\.\d) [ █░]+$")


def story(**changes: list[dict[str, Any]]) -> Tree:
    files = chain()
    files.update(changes)
    return build(matches(files), ID)


def span_rows(rows: list[str]) -> list[str]:
    return [row for row in rows if SPAN_ROW.search(ANSI.sub("", row))]


@pytest.mark.parametrize("width", [60, 80, 100, 160, 240])
def test_span_rows_fit_the_terminal_and_every_span_has_a_bar(width: int) -> None:
    tree = story()
    rows = render(tree, width)
    spans = span_rows(rows)
    assert len(spans) == sum(1 for _ in tree.spans())
    for row in spans:
        assert len(row) <= width - 1, (width, row)
        assert "█" in row
    assert "\x1b[" not in "".join(rows)


def test_bars_sit_on_one_time_axis() -> None:
    """A span's bar starts in the cell its start falls in; the span that ends the trace ends the axis."""
    tree = story()
    rows = render(tree, 200)
    heading = next(row for row in rows if row.startswith("span "))
    width = len(heading) - (heading.index("dur ms") + len("dur ms") + 1)
    assert heading.endswith(f"{(tree.end - tree.start).total_seconds() * 1000:.1f} ms") and width >= 10
    total = (tree.end - tree.start).total_seconds()
    for row, (_, span) in zip(span_rows(rows), tree.spans(), strict=True):
        bar = row[-width:]
        assert bar.index("█") == min(int((span.start - tree.start).total_seconds() / total * width), width - 1)
    last = span_rows(rows)[-1][-width:]
    assert last.endswith("█")


def test_open_spans_trail_to_the_end_and_say_why() -> None:
    tree = story(**{"w/worker.log": chain()["w/worker.log"][:3]})  # the retry's worker died: no result line
    rows = render(tree, 120)
    [retry] = [row for row in span_rows(rows) if "≥" in row]
    assert retry.rstrip().endswith("░")
    assert any("open-ended: no Celery result line" in row for row in rows)


def test_lines_are_under_their_span_with_offsets_and_errors_marked() -> None:
    error = line(20, "unhandled exception: GET /api/relay", A_SPAN, "trackline.responses", "ERROR",
                 exc_info="Traceback (most recent call last):\n  File \"x.py\", line 1\nRuntimeError: boom\n")
    tree = story(**{"a/app.log": [*chain()["a/app.log"], error]})
    rows = render(tree, 120)
    at = rows.index(next(row for row in rows if "unhandled exception" in row))
    assert "✗" in rows[at] and "ERROR" in rows[at]
    assert rows[at + 1].endswith("    → RuntimeError: boom")
    owner = max(i for i, row in enumerate(rows[:at]) if SPAN_ROW.search(row))
    assert "GET /api/relay?calls=1" in rows[owner] and "gunicorn.access" in rows[owner]
    offset = (tree.roots[0].children[0].lines[0].time - tree.start).total_seconds() * 1000
    assert f"+{offset:.1f} ms" in "".join(rows)


def test_lines_in_no_span_are_listed_apart() -> None:
    lone = line(50, "no trace fields here")
    rows = render(story(**{"a/error.log": [lone]}), 120)
    at = rows.index("lines in no span (1): no span_id, so their place in the tree is not known")
    assert "no trace fields here" in rows[at + 1] and "error.log" in rows[at + 1]


def test_colour_paints_kinds_errors_and_levels() -> None:
    error = line(20, "boom", A_SPAN, level="ERROR")
    rows = render(story(**{"a/app.log": [*chain()["a/app.log"], error]}), 120, colour=True)
    text = "\n".join(rows)
    assert "\x1b[35m█" in text and "\x1b[33m█" in text and "\x1b[32m█" in text  # edge, call, task
    assert "\x1b[31m█" in text  # the request with an ERROR line
    plain = render(story(**{"a/app.log": [*chain()["a/app.log"], error]}), 120, colour=False)
    assert [ANSI.sub("", row) for row in rows] == [row[:len(ANSI.sub("", coloured))] for row, coloured
                                                   in zip(plain, rows, strict=True)]


def test_ascii_where_stdout_cannot_encode_box_drawing() -> None:
    rows = render(story(), 120, glyphs=ASCII)
    assert all(ord(char) < 128 for row in rows for char in row)
    assert any(row.startswith("`- ") for row in rows) and any("#" in row for row in span_rows(rows) or rows)
    assert glyphs_for(io.TextIOWrapper(io.BytesIO(), encoding="ascii")) is ASCII
    assert glyphs_for(io.TextIOWrapper(io.BytesIO(), encoding="utf-8")) is UNICODE


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("tty", "no_color", "expected"), [
    (True, None, True), (True, "1", False), (True, "", True), (False, None, False)])
def test_colour_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch, tty: bool,
                                                    no_color: str | None, expected: bool) -> None:
    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)
    assert wants_colour(_Tty() if tty else io.StringIO()) is expected


def test_control_characters_from_the_lines_cannot_drive_the_terminal() -> None:
    hostile = "GET /\x1b]0;owned\x07\x1b[2J\r\nx\x9b31m"
    assert clean(hostile) == "GET /\\u001b]0;owned\\u0007\\u001b[2J\\r\\nx\\u009b31m"
    access = line(55, hostile, A_SPAN, "gunicorn.access", request_method="GET", request_path="/\x1b[2Jx",
                  query_string="a=\x1b[31m", status_code=200, request_time=0.0531)
    rows = render(story(**{"a/access.log": [access]}), 200, colour=False)
    assert not any(char in "".join(rows) for char in "\x1b\x07\r\x9b")


def test_a_wide_tree_of_500_spans_and_10000_lines_renders_quickly() -> None:
    tree = build(matches(big_story()), ID)
    started = time.perf_counter()
    rows = render(tree, 160)
    page(tree)
    assert time.perf_counter() - started < 5
    assert len(span_rows(rows)) == 500 and sum(1 for _, span in tree.spans()) == 500
    assert tree.lines == 10_000


def big_story(spans: int = 500, lines: int = 10_000) -> dict[str, list[dict[str, Any]]]:
    """One request (A) whose 499 calls each caused a request of B: 500 spans of the tree, ``lines`` lines."""
    files: dict[str, list[dict[str, Any]]] = {"a/app.log": [], "b/app.log": [], "a/access.log": [], "b/access.log": []}
    per_span = lines // spans
    files["a/access.log"].append(line(10_000, "GET /api/relay 200", A_SPAN, "gunicorn.access", request_method="GET",
                                      request_path="/api/relay", query_string="", status_code=200,
                                      request_time=10.0))
    for number in range((spans - 1) // 2):
        call, callee = f"{number:016x}", f"{number + 100000:016x}"
        start = 20 * number + 5
        files["a/app.log"].append(line(start, f"GET http://b/{number}", call, "trackline.propagation",
                                       parent_span_id=A_SPAN, request_method="GET", url=f"http://b/{number}"))
        for extra in range(per_span - 1):
            files["b/app.log"].append(line(start + 1 + extra / per_span, f"working {extra}", callee,
                                           parent_span_id=call))
        files["b/access.log"].append(line(start + 15, "GET /b 200", callee, "gunicorn.access", request_method="GET",
                                          request_path=f"/b/{number}", query_string="", status_code=200,
                                          request_time=0.014, parent_span_id=call))
    while sum(map(len, files.values())) < lines:
        files["a/app.log"].append(line(9_990, "filler", A_SPAN))
    if (spans - 1) % 2:  # an odd count: one more span of A's, a thread of its own
        files["a/app.log"].append(line(9_995, "a span of its own", "f" * 16, parent_span_id=A_SPAN))
        files["a/app.log"].pop(-2)
    return files


# -- the HTML page -----------------------------------------------------------------------------------------------

def test_the_page_embeds_the_tree_as_json_that_cannot_end_its_element() -> None:
    hostile = "</script><script>alert(1)</script><!-- \u2028 & <img src=x onerror=alert(2)>"
    tree = story(**{"a/app.log": [*chain()["a/app.log"], line(45, hostile, A_SPAN)]})
    text = page(tree)
    assert hostile not in text and "<img" not in text and "alert(1)</script>" not in text
    found = re.search(r'<script type="application/json" id="waterfall-data">(.*?)</script>', text, re.S)
    assert found is not None and json.loads(found.group(1)) == json.loads(json.dumps(tree_json(tree)))
    assert "<" not in found.group(1) and ">" not in found.group(1) and "&" not in found.group(1)
    assert embed({"a": "</script>\u2028&"}) == '{"a":"\\u003c/script\\u003e\\u2028\\u0026"}'


def test_the_page_loads_nothing_and_runs_only_its_own_script() -> None:
    text = page(story())
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', text)
    assert policy is not None and "default-src &#x27;none&#x27;" in policy.group(1)
    for part in (SCRIPT, STYLE):
        digest = base64.b64encode(hashlib.sha256(part.encode()).digest()).decode()
        assert f"sha256-{digest}" in policy.group(1)
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "Function(", "fetch(",
                 "XMLHttpRequest", "import(", "src =", ".src=", "href"):
        assert sink not in SCRIPT, sink
    skeleton = text[:text.index('id="waterfall-data">')] + SCRIPT + STYLE
    assert "http:" not in skeleton and "https:" not in skeleton and "url(" not in skeleton
    assert "<link" not in text and "@import" not in text and "@font-face" not in text


# -- the command line ------------------------------------------------------------------------------------------

@pytest.fixture
def log_dirs(tmp_path: Path) -> list[Path]:
    for name, records in chain().items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return [tmp_path / folder for folder in ("edge", "a", "b", "w")]


def trace(*args: str, dirs: list[Path], columns: int = 120) -> subprocess.CompletedProcess[str]:
    command = [str(TRACKLINE), "trace", *args]
    for directory in dirs:
        command += ["--log-dir", str(directory)]
    env = {key: value for key, value in os.environ.items() if key != "NO_COLOR"}
    return subprocess.run(command, capture_output=True, text=True, timeout=30, env={**env, "COLUMNS": str(columns)})


def test_the_trace_options(log_dirs: list[Path], tmp_path: Path) -> None:
    drawn = trace(ID, "--waterfall", dirs=log_dirs)
    assert drawn.returncode == 0 and drawn.stderr == ""
    assert drawn.stdout.splitlines() == render(build(matches(chain()), ID), 120)
    assert len(span_rows(drawn.stdout.splitlines())) == 6 and "\x1b[" not in drawn.stdout
    as_json = trace(ID, "--json", dirs=log_dirs)
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["counts"]["spans"] == 6
    out = tmp_path / "page.html"
    written = trace(ID, "--html", str(out), dirs=log_dirs)
    assert written.returncode == 0 and written.stdout == f"wrote {out}: 6 spans, 11 lines\n"
    assert out.read_text().startswith("<!DOCTYPE html>")
    both = trace(ID, "--html", str(tmp_path / "again.html"), "--json", dirs=log_dirs)
    assert both.returncode == 0 and json.loads(both.stdout)["counts"]["spans"] == 6
    assert (tmp_path / "again.html").exists()


def test_the_views_exclude_each_other_and_a_missing_request_writes_nothing(log_dirs: list[Path],
                                                                          tmp_path: Path) -> None:
    clash = trace(ID, "--pretty", "--waterfall", dirs=log_dirs)
    assert clash.returncode == 2 and "not allowed with argument" in clash.stderr
    out = tmp_path / "none.html"
    missing = trace("no-such-request", "--waterfall", "--html", str(out), dirs=log_dirs)
    assert missing.returncode == 1 and missing.stdout == "" and not out.exists()
    assert "no lines for no-such-request" in missing.stderr


def test_a_page_that_cannot_be_written_is_said_and_exits_2(log_dirs: list[Path], tmp_path: Path) -> None:
    result = trace(ID, "--html", str(tmp_path / "no" / "such" / "dir.html"), dirs=log_dirs)
    assert result.returncode == 2 and "trackline: cannot write" in result.stderr and result.stdout == ""


def test_emit_writes_nothing_without_lines() -> None:
    out = io.StringIO()
    assert emit([], ID, waterfall=True, as_json=True, out=out) and out.getvalue() == ""


def test_times_shown_are_local_and_relative() -> None:
    tree = story()
    head = render(tree, 200)[0]
    assert tree.start.astimezone().strftime("%Y-%m-%d %H:%M:%S") in head
    assert (tree.end - tree.start) == timedelta(milliseconds=298.1) and "(298.1 ms)" in head


def test_a_terminal_cuts_long_lines_a_pipe_keeps_them_whole() -> None:
    long = line(20, "x" * 500, A_SPAN)
    tree = story(**{"a/app.log": [*chain()["a/app.log"], long]})
    whole = render(tree, 100)
    assert any("x" * 500 in row for row in whole)
    cut = render(tree, 100, cut=True)
    assert max(len(row) for row in cut) <= 99 and any(row.endswith("x…") for row in cut)


def test_in_one_millisecond_the_access_line_is_the_requests_last() -> None:
    files = chain()  # "access.log" sorts before "app.log": the file names alone would put it first
    files["a/app.log"].append(line(55, "answered", A_SPAN))
    tree = build(matches(files), ID)
    a = tree.roots[0].children[0]
    assert [line.message for line in a.lines][-2:] == ["answered", "GET /api/relay 200"]
