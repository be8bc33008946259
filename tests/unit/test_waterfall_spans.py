"""The span tree of ``trackline trace ID --waterfall / --json / --html`` (trackline.reader.spans), from lines as
each writer logs them: the edge's nginx, two trackline services, an outgoing call, a Celery task and its retry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from trackline.reader.spans import CALL, EDGE, REQUEST, SPAN, TASK, Span, Tree, build, tree_json
from trackline.reader.trace import Match, directory_bases, find

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
    labels = {key: record[key] for key in ("parent_span_id", "task_id", "task_name", "parent_task_id", "job_id",
                                           "data") if key in record}
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
        target = record["request_path"] + (f"?{record['query_string']}" if record["query_string"] else "")
        out["httpRequest"] = {"requestMethod": "GET", "requestUrl": target, "status": record["status_code"],
                              "latency": f"{record['request_time']:.6f}s"}
    elif "url" in record:
        out["httpRequest"] = {"requestMethod": "GET", "requestUrl": record["url"]}
    out.update({key: record[key] for key in ("parent_span_id", "task_id", "task_name", "parent_task_id", "job_id",
                                             "data") if key in record})
    return out


def _datadog(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"timestamp": record["@timestamp"], "status": record["level"].lower(),
                           "message": record["message"], "logger": {"name": record["logger"]},
                           "tracking_id": record["tracking_id"]}
    if "span_id" in record:
        out.update(trace_id=record["trace_id"], span_id=record["span_id"])
    if "status_code" in record:
        target = record["request_path"] + (f"?{record['query_string']}" if record["query_string"] else "")
        out["http"] = {"method": "GET", "url": target, "url_details": {"path": record["request_path"]},
                       "status_code": record["status_code"]}
        out["duration"] = round(record["request_time"] * 1e9)
    elif "url" in record:
        out["http"] = {"method": "GET", "url": record["url"]}
    out.update({key: record[key] for key in ("parent_span_id", "task_id", "task_name", "parent_task_id", "job_id",
                                             "data") if key in record})
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
    attributes.update({key: record[key] for key in ("parent_span_id", "task_id", "task_name", "parent_task_id",
                                                    "job_id", "data") if key in record})
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
