"""OpenTelemetry as the source of truth: an app instrumented the usual way (SDK TracerProvider, Flask and requests
instrumentation), served by ``trackline serve``, two services calling each other. Every line names a span that
OTel's own exporter wrote, one trace crosses both services, and exactly one ``traceparent`` is on the wire."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.processes import run_python
from support.server import Server, new_server

#: A team's app: OTel set up as its docs say, unless NO_OTEL is set; spans go to a file, one JSON per line, by
#: OTel's ConsoleSpanExporter (its own exporter).
APP = textwrap.dedent('''
    import json, logging, os
    import requests
    from flask import Flask, request
    from trackline import propagation

    log = logging.getLogger("otel_app")

    def create_app():
        app = Flask("otel_app")
        if not os.environ.get("NO_OTEL"):
            from opentelemetry import trace
            from opentelemetry.instrumentation.flask import FlaskInstrumentor
            from opentelemetry.instrumentation.requests import RequestsInstrumentor
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

            provider = TracerProvider()
            spans = open(os.environ["SPANS_FILE"], "a", buffering=1)
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(
                out=spans, formatter=lambda span: span.to_json(indent=None) + "\\n")))
            trace.set_tracer_provider(provider)
            FlaskInstrumentor().instrument_app(app)
            RequestsInstrumentor().instrument()
        session = propagation.instrument(requests.Session())

        @app.get("/hello")
        def hello():
            log.info("hello", extra={"received_traceparent": request.headers.get("traceparent")})
            return {"ok": True}

        @app.get("/call")
        def call():
            log.info("calling")
            answer = session.get(request.args["url"] + "/hello", timeout=10)
            return {"status": answer.status_code}

        @app.get("/boom")
        def boom():
            raise RuntimeError("boom")

        return app
''')


def otel_server(root: Path, otel: bool) -> Server:
    root.mkdir(parents=True, exist_ok=True)
    (root / "otel_app.py").write_text(APP)
    env = {"TRACKLINE_WORKERS": "1", "PYTHONPATH": str(root), "SPANS_FILE": str(root / "spans.jsonl")}
    if not otel:
        env["NO_OTEL"] = "1"
    return new_server(root, env=env, args=["--app", "otel_app:create_app()"], probe="/hello", warm_up="/hello")


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    base = tmp_path_factory.mktemp("otel")
    caller, callee = otel_server(base / "caller", True), otel_server(base / "callee", True)
    try:
        yield callee.start(), caller.start()
    finally:
        for server in (caller, callee):
            server.stop()


def spans(server: Server) -> dict[str, dict[str, Any]]:
    """The spans OTel's exporter wrote, by span_id (32/16 hex digits, without OTel's ``0x``)."""
    exported = {}
    for line in (server.root / "spans.jsonl").read_text().splitlines():
        span = json.loads(line)
        span["trace_id"], span["span_id"] = span["context"]["trace_id"][2:], span["context"]["span_id"][2:]
        span["parent"] = span["parent_id"][2:] if span.get("parent_id") else None
        exported[span["span_id"]] = span
    return exported


def lines_of(server: Server, tracking_id: str) -> list[dict[str, Any]]:
    return [line for name in ("app.log", "access.log", "error.log") for line in server.logs(name)
            if line["tracking_id"] == tracking_id]


def test_every_line_of_a_request_names_a_span_otel_recorded_and_one_trace_crosses_both_services(
        services: tuple[Server, Server]) -> None:
    callee, caller = services
    answer = caller.get(f"/call?url={callee.url}", {"X-Tracking-ID": "otel-1"})
    assert answer.status == 200 and answer.json() == {"status": 200}
    caller.stop()  # every span exported, every line written
    callee.stop()

    caller_spans, callee_spans = spans(caller), spans(callee)
    mine, theirs = lines_of(caller, "otel-1"), lines_of(callee, "otel-1")
    assert {line["logger"] for line in mine} >= {"otel_app", "trackline.propagation", "gunicorn.access"}
    assert {line["logger"] for line in theirs} >= {"otel_app", "gunicorn.access"}  # the ID crossed too
    [trace_id] = {line["trace_id"] for line in mine + theirs}  # one trace
    for line in mine:
        assert line["span_id"] in caller_spans, line
    for line in theirs:
        assert line["span_id"] in callee_spans, line
    sampled = {line["trace_flags"] for line in mine + theirs}  # OTel's flags: sampled, and its SDK's random bit
    assert len(sampled) == 1 and int(sampled.pop(), 16) & 1

    [server_span] = [s for s in caller_spans.values() if s["kind"] == "SpanKind.SERVER" and s["trace_id"] == trace_id]
    [client_span] = [s for s in caller_spans.values() if s["kind"] == "SpanKind.CLIENT"]
    [access] = [line for line in mine if line["logger"] == "gunicorn.access"]
    assert access["span_id"] == server_span["span_id"]  # the access line: the request's server span
    assert client_span["parent"] == server_span["span_id"]
    [hello] = [line for line in theirs if line["logger"] == "otel_app"]
    # Exactly one traceparent on the wire (two would arrive joined by a comma), OTel's, from its client span.
    assert hello["received_traceparent"] == f"00-{trace_id}-{client_span['span_id']}-{hello['trace_flags']}"
    [callee_server] = [s for s in callee_spans.values() if s["kind"] == "SpanKind.SERVER" and s["trace_id"] == trace_id]
    assert callee_server["parent"] == client_span["span_id"] and hello["span_id"] == callee_server["span_id"]
    assert {server_span["trace_id"], callee_server["trace_id"]} == {trace_id}


def test_an_incoming_traceparent_gives_one_trace_in_both_and_errors_carry_otels_span(tmp_path: Path) -> None:
    server = otel_server(tmp_path / "one", True).start()
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    failed = server.get("/boom", {"X-Tracking-ID": "otel-2", "traceparent": traceparent})
    rejected = server.get("/hello", {"X-Tracking-ID": "bad id", "traceparent": traceparent})
    server.stop()
    assert failed.status == 500 and rejected.status == 200
    exported = spans(server)
    lines = lines_of(server, "otel-2") + lines_of(server, rejected.headers["X-Tracking-ID"])
    assert {line["logger"] for line in lines} >= {"trackline.tracking", "otel_app", "gunicorn.access"}
    for line in lines:  # the traceback, the replaced ID's warning, the access lines
        assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736" and line["span_id"] in exported, line
        assert exported[line["span_id"]]["parent"] == "00f067aa0ba902b7"  # the server span of the caller's trace


def test_without_otel_the_app_keeps_tracklines_own_trace(tmp_path: Path) -> None:
    server = otel_server(tmp_path / "plain", False).start()
    answer = server.get("/hello")
    server.stop()
    tracking_id = answer.headers["X-Tracking-ID"]
    lines = lines_of(server, tracking_id)
    assert lines and {line["trace_id"] for line in lines} == {tracking_id.replace("-", "")}  # one value finds both
    assert all(line["trace_flags"] == "03" for line in lines)
    assert not (server.root / "spans.jsonl").exists()


#: A request's scope publishing a task on Celery's in-memory broker to a worker in the same process, with OTel's
#: SDK and its Celery instrumentation; prints the message's headers, the task's log line and OTel's spans.
CELERY_SCRIPT = textwrap.dedent('''
    import io, json, logging, sys
    from celery import Celery, signals
    from celery.contrib.testing.worker import start_worker
    from opentelemetry import trace
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from trackline import context
    from trackline.celery import instrument
    from trackline.logs import JsonFormatter, TrackingIdFilter

    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    trace.set_tracer_provider(provider)
    CeleryInstrumentor().instrument()
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.addFilter(TrackingIdFilter())
    handler.setFormatter(JsonFormatter())
    logging.getLogger("task").addHandler(handler)
    logging.getLogger("task").setLevel(logging.INFO)

    app = instrument(Celery("otel", broker="memory://", backend="cache+memory://"))
    sent = []
    signals.after_task_publish.connect(lambda headers, **_: sent.append(dict(headers)), weak=False)

    @app.task(name="otel.work")
    def work():
        logging.getLogger("task").info("working")

    with start_worker(app, perform_ping_check=False):
        with trace.get_tracer("test").start_as_current_span("request"):
            token = context.enter("celery-otel-1", otel=True)
            work.delay().get(timeout=10)
            context.leave(token)
    spans = [{"name": s.name, "span_id": f"{s.context.span_id:016x}", "trace_id": f"{s.context.trace_id:032x}",
              "parent": f"{s.parent.span_id:016x}" if s.parent else None} for s in exported.get_finished_spans()]
    print(json.dumps({"headers": [{k: v for k, v in h.items() if k in ("tracking_id", "traceparent")}
                                  for h in sent],
                      "line": json.loads(lines.getvalue().splitlines()[-1]), "spans": spans}))
''')


def test_a_task_published_in_a_request_carries_otels_producer_span_and_runs_in_its_consumer_span() -> None:
    done = run_python(CELERY_SCRIPT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    spans = {span["name"].split("/")[0]: span for span in result["spans"]}
    [headers] = result["headers"]
    producer, consumer, request = spans["apply_async"], spans["run"], spans["request"]
    assert headers["tracking_id"] == "celery-otel-1"
    assert headers["traceparent"].split("-")[1:3] == [request["trace_id"], producer["span_id"]]  # OTel's, one
    assert producer["parent"] == request["span_id"] and consumer["parent"] == producer["span_id"]
    line = result["line"]
    assert (line["tracking_id"], line["trace_id"], line["span_id"]) == (
        "celery-otel-1", request["trace_id"], consumer["span_id"])
