"""The waterfall of lines whose spans are OpenTelemetry's: an app instrumented the usual way (SDK TracerProvider,
Flask and requests instrumentation), served by two real `trackline serve` on 127.0.0.1, one calling the other.

OTel's client span of the call is in no line (trackline's call line is in the server span then): the tree places
the callee's request under the caller's by time, says so, and OTel's own exported spans agree."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.paths import TRACKLINE
from support.server import Server, new_server

pytest.importorskip("opentelemetry.sdk", reason="the test extra's OpenTelemetry SDK is not installed")

APP = textwrap.dedent('''
    import logging, os
    import requests
    from flask import Flask, request
    from opentelemetry import trace
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
    from trackline import propagation

    log = logging.getLogger("otel_app")


    def create_app():
        app = Flask("otel_app")
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
            log.info("hello")
            return {"ok": True}

        @app.get("/call")
        def call():
            log.info("calling")
            answer = session.get(request.args["url"] + "/hello", timeout=10)
            log.info("called")
            return {"status": answer.status_code}

        return app
''')


def otel_server(root: Path) -> Server:
    root.mkdir(parents=True, exist_ok=True)
    (root / "otel_app.py").write_text(APP)
    env = {"TRACKLINE_WORKERS": "1", "PYTHONPATH": str(root), "SPANS_FILE": str(root / "spans.jsonl")}
    return new_server(root, env=env, args=["--app", "otel_app:create_app()"], probe="/hello", warm_up="/hello")


@pytest.fixture(scope="module")
def called(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server, str]]:
    """The caller and the callee, stopped after one call through both; the call's tracking ID."""
    base = tmp_path_factory.mktemp("otel-waterfall")
    caller, callee = otel_server(base / "caller"), otel_server(base / "callee")
    try:
        callee.start()
        caller.start()
        response = caller.get(f"/call?url={callee.url}", headers={"X-Tracking-ID": "otel-waterfall-1"})
        assert response.status == 200 and response.json() == {"status": 200}
        assert caller.stop() == 0 and callee.stop() == 0
        yield caller, callee, "otel-waterfall-1"
    finally:
        caller.stop()
        callee.stop()


def exported(server: Server) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (server.root / "spans.jsonl").read_text().splitlines()]


@pytest.mark.slow  # two servers: about ten seconds
def test_the_callee_is_under_the_caller_as_otels_own_spans_say(called: tuple[Server, Server, str]) -> None:
    caller, callee, tracking_id = called
    result = subprocess.run([str(TRACKLINE), "trace", tracking_id, "--log-dir", str(caller.log_dir), "--log-dir",
                             str(callee.log_dir), "--json"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    document = json.loads(result.stdout)
    [root] = document["spans"]
    [child] = root["children"]
    assert (root["kind"], root["name"], root["link"]) == ("request", f"GET /call?url={callee.url}", "root")
    assert root["service"] == child["service"] == "gunicorn.access"  # the request's line, not its call's
    assert (child["kind"], child["name"], child["link"]) == ("request", "GET /hello", "time")
    assert [line["message"] for line in root["lines"]][:3] == ["calling", f"GET {callee.url}/hello", "called"]
    # OTel's record: the callee's server span's parent is the caller's client span, whose parent is the caller's
    # server span: the span the tree put it under
    spans = {span["context"]["span_id"][2:]: span for server in (caller, callee) for span in exported(server)}
    client = spans[child["parent_span_id"]]
    assert client["kind"] == "SpanKind.CLIENT" and client["parent_id"][2:] == root["span_id"]
    assert spans[child["span_id"]]["kind"] == "SpanKind.SERVER" and spans[root["span_id"]]["kind"] == "SpanKind.SERVER"
    for span in (root, child):  # the logged request_time
        [access] = [line for line in span["lines"] if line["logger"] == "gunicorn.access"]
        assert span["duration_ms"] == pytest.approx(access["record"]["request_time"] * 1000, abs=1e-3)
    drawn = subprocess.run([str(TRACKLINE), "trace", tracking_id, "--log-dir", str(caller.log_dir), "--log-dir",
                            str(callee.log_dir), "--waterfall"], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "COLUMNS": "160"})
    assert "placed by time (it ran within this span of its trace)" in drawn.stdout
