"""The two baselines trackline is measured against, serving the same JSON bodies as trackline's routes.

``raw_app`` is a plain WSGI callable; ``create_flask_app()`` is a bare Flask app (no tracking, no logging)
building the envelope per request the way trackline does. Flask is imported only by the factory, so the raw
app's workers never load it (their RSS is the floor).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

#: The ``data`` of each benchmarked route, as trackline's API returns it.
DATA: dict[str, Any] = {"/api/health": "OK", "/api/names": ["Alice", "Bob", "Charlie"]}


def envelope(method: str, path: str, data: Any) -> str:
    """Trackline's success body, byte for byte (see trackline.responses.JsonResponse)."""
    return json.dumps({"code": 200, "msg": f"{method} {path} success", "data": data}, ensure_ascii=False, default=str)


def raw_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The ceiling: a WSGI callable that does nothing but encode the envelope."""
    path = environ.get("PATH_INFO", "")
    if path not in DATA:
        start_response("404 NOT FOUND", [("Content-Type", "text/plain"), ("Content-Length", "0")])
        return [b""]
    body = envelope(environ["REQUEST_METHOD"], path, DATA[path]).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def create_otel_flask_app() -> Any:
    """The bare Flask app instrumented as a team running OpenTelemetry does it: the SDK's TracerProvider with a
    batching processor, Flask's and logging's instrumentation; the exporter drops the spans (what is measured is
    the app's side). Each gunicorn worker builds its own provider: the factory runs after the fork."""
    from opentelemetry import trace
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.instrumentation.logging import LoggingInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class DropSpans(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DropSpans()))
    trace.set_tracer_provider(provider)
    LoggingInstrumentor().instrument()
    app = create_flask_app()
    FlaskInstrumentor().instrument_app(app)
    return app


def create_flask_app() -> Any:
    """A bare Flask app with the same routes and bodies: what a user would write without trackline."""
    from flask import Flask, Response, request

    app = Flask("bare")

    def route() -> Response:
        return Response(envelope(request.method, request.path, DATA[request.path]), mimetype="application/json")

    for path in DATA:
        app.add_url_rule(path, path, route)
    return app
