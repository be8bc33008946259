"""Field presets (``fields:`` on JsonFormatter): the default's exact bytes, each backend's names and types, the
values computed by hand, the one-line config errors, and ``trackline trace`` reading every preset."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pythonjsonlogger.json import JsonFormatter as PjlJsonFormatter

from trackline.config import ConfigError
from trackline.logs import JsonFormatter, check_logging_config
from trackline.logs.presets import PRESETS, otel_severity_number
from trackline.reader.trace import find, pretty

REPO = Path(__file__).resolve().parents[2]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
PARENT_ID = "b7ad6b7169203331"
#: Computed by hand (``echo "ibase=16; A3CE929D0E0E4736" | bc``): the decimal of the trace ID's lower 64 bits,
#: and of the span ID, as Datadog's tracers write them.
DD_TRACE_ID = "11803532876627986230"
DD_SPAN_ID = "67667974448284343"
CREATED = 1796651047.718  # 2026-12-07T13:44:07.718+00:00
ACCESS = {"remote_addr": "127.0.0.1", "protocol": "HTTP/1.1", "host": "127.0.0.1:8000", "request_method": "GET",
          "request_path": "/api/health", "query_string": "a=1&b=2", "status_code": 200, "response_length": 61,
          "referer": "http://client.test/page", "user_agent": "curl/7.88.1", "request_time": 0.012}


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC0")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _record(name: str = "trackline.api", level: int = logging.INFO, message: str = "Health check",
            args: tuple[Any, ...] | None = None, exc: bool = False, **fields: Any) -> logging.LogRecord:
    """A record as the TrackingIdFilter leaves it (its fields given), made at ``CREATED`` by pid 4242."""
    exc_info = None
    if exc:
        try:
            raise RuntimeError("This is a test exception")
        except RuntimeError:
            exc_info = sys.exc_info()
    record = logging.LogRecord(name, level, "/srv/app/common.py", 20, message, args, exc_info, "health_check")
    record.created, record.msecs, record.process = CREATED, 718.0, 4242
    record.__dict__.update({"tracking_id": "req-1", **fields})
    return record


def _trace(**more: Any) -> dict[str, Any]:
    return {"trace_id": TRACE_ID, "span_id": SPAN_ID, "parent_span_id": PARENT_ID, "trace_flags": "01", **more}


def _line(preset: str, record: logging.LogRecord, **options: Any) -> dict[str, Any]:
    if preset == "gcp":
        options.setdefault("gcp_project", "my-project")
    line = JsonFormatter(fields=preset, **options).format(record)
    assert "\n" not in line
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def _access(preset: str, **more: Any) -> dict[str, Any]:
    record = _record("gunicorn.access", message="%s %s %s", args=("GET", "/api/health", 200),
                     **{**ACCESS, **_trace(), **more})
    return _line(preset, record, location=False)


# -- the default ---------------------------------------------------------------------------------------------

TODAY_APP = (
    '{"@timestamp":"2026-12-07T13:44:07.718+00:00","level":"INFO","logger":"trackline.api",'
    '"tracking_id":"req-1","message":"Health check","pid":4242,"loc":"common.py:20","func":"health_check",'
    '"env":"test","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7",'
    '"order_id":7}')


@pytest.mark.parametrize("options", [{}, {"fields": "trackline"}], ids=["unset", "trackline"])
def test_the_default_preset_writes_todays_bytes_with_todays_method(options: dict[str, Any]) -> None:
    formatter = JsonFormatter(static_fields={"env": "test"}, **options)
    record = _record(trace_id=TRACE_ID, span_id=SPAN_ID, order_id=7)
    assert formatter.format(record) == TODAY_APP
    assert "add_fields" not in formatter.__dict__  # the class's own method: no per-line choice, no wrapper


# -- every preset ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("preset", PRESETS)
def test_tracking_id_keeps_its_name_at_the_top_level_in_every_preset(preset: str) -> None:
    assert _line(preset, _record(**_trace()))["tracking_id"] == "req-1"
    assert _line(preset, _record(tracking_id=None))["tracking_id"] is None
    assert _access(preset)["tracking_id"] == "req-1"


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_writes_a_traceback_as_one_string(preset: str) -> None:
    line = _line(preset, _record(level=logging.ERROR, exc=True))
    text = json.dumps(line)
    assert text.count("Traceback (most recent call last)") == 1
    assert "RuntimeError: This is a test exception" in text


@pytest.mark.parametrize("preset", PRESETS)
def test_the_short_format_writes_what_python_json_loggers_format_writes(preset: str) -> None:
    formatter = JsonFormatter(fields=preset, static_fields={"env": "test"},
                              gcp_project="my-project" if preset == "gcp" else None)
    records = [_record(), _record(message="%s order %d", args=("paid", 7), **_trace(order_id=7, _private=1)),
               _record("gunicorn.access", message="%s %s %s", args=("GET", "/api/health", 200),
                       **{**ACCESS, **_trace()})]
    for made in records:
        assert formatter.format(made) == PjlJsonFormatter.format(formatter, made)


def test_prefix_and_process_log_record_apply_to_every_record() -> None:
    class Stamped(JsonFormatter):
        def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
            return {**log_data, "stamped": True}

    for made in (_record(), _record(exc=True), _record(message={"order": 7})):  # type: ignore[arg-type]
        line = Stamped(prefix="@cee: ").format(made)
        assert line.startswith('@cee: {"@timestamp":') and json.loads(line.removeprefix("@cee: "))["stamped"] is True


def test_extra_fields_are_found_for_every_layout_of_a_records_fields() -> None:
    formatter = JsonFormatter()
    for rounds in range(2):  # more layouts than a formatter remembers, then the first ones again
        for index in range(300):
            extra = {f"field_{index}": index + rounds, **({"_private": 1} if index % 2 else {}), "last": rounds}
            line = json.loads(formatter.format(_record(**extra)))
            assert list(line)[-2:] == [f"field_{index}", "last"] and line[f"field_{index}"] == index + rounds
            assert "_private" not in line and line["last"] == rounds


def test_ecs() -> None:
    app = _line("ecs", _record(**_trace(), order_id=7, **{"odd.key*": 1}), static_fields={
        "service.name": "orders", "service.environment": "prod", "env": "prod", "tags": ["a"]})
    # the ecs-logging spec's first keys, in its order; log.level never nested
    assert list(app)[:4] == ["@timestamp", "log.level", "message", "ecs.version"]
    assert (app["@timestamp"], app["log.level"], app["message"], app["ecs.version"]) == (
        "2026-12-07T13:44:07.718+00:00", "INFO", "Health check", "8.11.0")
    assert app["log"] == {"logger": "trackline.api",
                          "origin": {"file": {"name": "common.py", "line": 20}, "function": "health_check"}}
    assert app["process"] == {"pid": 4242}
    assert (app["trace"], app["span"]) == ({"id": TRACE_ID}, {"id": SPAN_ID})
    assert app["service"] == {"name": "orders", "environment": "prod"}
    assert app["tags"] == ["a"]
    # extras, trackline's own fields without an ECS name, and plain static names: labels, keys de-dotted
    assert app["labels"] == {"env": "prod", "parent_span_id": PARENT_ID, "trace_flags": "01", "order_id": 7,
                             "odd_key_": 1}

    access = _access("ecs")
    assert access["http"] == {"version": "1.1", "request": {"method": "GET", "referrer": "http://client.test/page"},
                              "response": {"status_code": 200, "body": {"bytes": 61}}}
    assert access["url"] == {"domain": "127.0.0.1", "port": 8000, "path": "/api/health", "query": "a=1&b=2"}
    assert (access["client"], access["user_agent"]) == ({"ip": "127.0.0.1"}, {"original": "curl/7.88.1"})
    assert access["event"] == {"duration": 12_000_000}  # nanoseconds
    assert "origin" not in access["log"]  # location: false
    assert "query" not in _access("ecs", query_string="")["url"]  # none: the field is left out

    error = _line("ecs", _record(level=logging.ERROR, exc=True))
    assert error["error"]["type"] == "RuntimeError"
    assert error["error"]["message"] == "This is a test exception"
    assert error["error"]["stack_trace"].endswith("RuntimeError: This is a test exception")


def test_gcp_trace_path_sampling_and_http_request() -> None:
    app = _line("gcp", _record(**_trace(), order_id=7), gcp_project="my-project", static_fields={"service": "a"})
    assert (app["time"], app["severity"], app["message"], app["logger"], app["pid"]) == (
        "2026-12-07T13:44:07.718+00:00", "INFO", "Health check", "trackline.api", 4242)
    # by hand: projects/<gcp_project>/traces/<the 32 hex digits>
    assert app["logging.googleapis.com/trace"] == "projects/my-project/traces/4bf92f3577b34da6a3ce929d0e0e4736"
    assert app["logging.googleapis.com/spanId"] == "00f067aa0ba902b7"
    assert app["logging.googleapis.com/trace_sampled"] is True
    assert app["logging.googleapis.com/sourceLocation"] == {"file": "common.py", "line": "20",
                                                            "function": "health_check"}
    assert (app["parent_span_id"], app["order_id"], app["service"]) == (PARENT_ID, 7, "a")  # jsonPayload fields
    assert "trace_id" not in app and "span_id" not in app and "trace_flags" not in app
    assert _line("gcp", _record(**_trace(trace_flags="02")))["logging.googleapis.com/trace_sampled"] is False
    assert "logging.googleapis.com/trace_sampled" not in _line("gcp", _record(trace_id=TRACE_ID, span_id=SPAN_ID))

    access = _access("gcp")
    assert access["httpRequest"] == {
        "remoteIp": "127.0.0.1", "protocol": "HTTP/1.1", "requestMethod": "GET", "requestUrl": "/api/health?a=1&b=2",
        "status": 200, "responseSize": "61", "referer": "http://client.test/page", "userAgent": "curl/7.88.1",
        "latency": "0.012s"}
    assert "logging.googleapis.com/sourceLocation" not in access
    assert _access("gcp", query_string="")["httpRequest"]["requestUrl"] == "/api/health"

    error = _line("gcp", _record(level=logging.ERROR, exc=True))
    assert error["severity"] == "ERROR"
    assert error["stack_trace"].endswith("RuntimeError: This is a test exception")  # what Error Reporting reads


@pytest.mark.parametrize(("seconds", "latency"), [
    (0.012, "0.012s"), (0.001681, "0.001681s"), (2.0, "2s"), (1.5, "1.500s"), (0.000000123, "0.000000123s")])
def test_gcp_latency_is_a_protobuf_duration(seconds: float, latency: str) -> None:
    assert _access("gcp", request_time=seconds)["httpRequest"]["latency"] == latency


@pytest.mark.parametrize(("level", "severity"), [
    (logging.DEBUG, "DEBUG"), (logging.INFO, "INFO"), (logging.WARNING, "WARNING"), (logging.ERROR, "ERROR"),
    (logging.CRITICAL, "CRITICAL"), (25, "INFO"), (5, "DEFAULT")])
def test_gcp_severity(level: int, severity: str) -> None:
    assert _line("gcp", _record(level=level))["severity"] == severity


def test_datadog_decimal_ids_and_standard_attributes() -> None:
    app = _line("datadog", _record(**_trace(), order_id=7))
    assert (app["timestamp"], app["status"], app["message"]) == (
        "2026-12-07T13:44:07.718+00:00", "info", "Health check")
    assert app["logger"] == {"name": "trackline.api", "method_name": "health_check"}
    assert (app["dd.trace_id"], app["dd.span_id"]) == (DD_TRACE_ID, DD_SPAN_ID)  # computed by hand, above
    assert (app["trace_id"], app["span_id"]) == (TRACE_ID, SPAN_ID)  # the W3C IDs, which Datadog reads too
    assert (app["parent_span_id"], app["order_id"]) == (PARENT_ID, 7)

    access = _access("datadog")
    assert access["http"] == {"version": "1.1", "url_details": {"host": "127.0.0.1", "port": 8000,
                                                                "path": "/api/health"},
                              "method": "GET", "url": "/api/health?a=1&b=2", "status_code": 200,
                              "referer": "http://client.test/page", "useragent": "curl/7.88.1"}
    assert access["network"] == {"client": {"ip": "127.0.0.1"}, "bytes_written": 61}
    assert access["duration"] == 12_000_000  # nanoseconds

    error = _line("datadog", _record(level=logging.ERROR, exc=True))
    assert error["status"] == "error"
    assert (error["error"]["kind"], error["error"]["message"]) == ("RuntimeError", "This is a test exception")
    assert error["error"]["stack"].endswith("RuntimeError: This is a test exception")


def test_otel_log_data_model() -> None:
    app = _line("otel", _record(**_trace(), order_id=7), static_fields={"service.name": "orders"})
    assert (app["timestamp"], app["severity_text"], app["severity_number"], app["body"]) == (
        "2026-12-07T13:44:07.718+00:00", "INFO", 9, "Health check")
    assert (app["trace_id"], app["span_id"], app["trace_flags"]) == (TRACE_ID, SPAN_ID, "01")
    assert app["attributes"] == {"code.file.path": "/srv/app/common.py", "code.line.number": 20,
                                 "code.function.name": "health_check", "parent_span_id": PARENT_ID, "order_id": 7}
    assert app["resource"] == {"attributes": {"service.name": "orders", "process.pid": 4242}}
    assert app["instrumentation_scope"] == {"name": "trackline.api"}

    access = _access("otel")
    assert access["attributes"] == {
        "client.address": "127.0.0.1", "network.protocol.version": "1.1", "server.address": "127.0.0.1",
        "server.port": 8000, "http.request.method": "GET", "url.path": "/api/health", "url.query": "a=1&b=2",
        "http.response.status_code": 200, "http.response.body.size": 61,
        "http.request.header.referer": ["http://client.test/page"], "user_agent.original": "curl/7.88.1",
        "http.server.request.duration": 0.012, "parent_span_id": PARENT_ID}

    error = _line("otel", _record(level=logging.ERROR, exc=True))["attributes"]
    assert (error["exception.type"], error["exception.message"]) == ("RuntimeError", "This is a test exception")
    assert error["exception.stacktrace"].endswith("RuntimeError: This is a test exception")


@pytest.mark.parametrize(("level", "number"), [
    (logging.DEBUG, 5), (logging.INFO, 9), (logging.WARNING, 13), (logging.ERROR, 17), (logging.CRITICAL, 21),
    (11, 6), (25, 12), (53, 24), (60, 24), (5, 0)])
def test_otel_severity_number_follows_the_python_sdk(level: int, number: int) -> None:
    assert otel_severity_number(level) == number


@pytest.mark.parametrize(("host", "expected"), [
    ("example.com", {"server.address": "example.com"}),
    ("[::1]:8443", {"server.address": "::1", "server.port": 8443}),
])
def test_hosts_with_and_without_a_port(host: str, expected: dict[str, Any]) -> None:
    attributes = _access("otel", host=host)["attributes"]
    assert {key: attributes[key] for key in attributes if key.startswith("server.")} == expected


def test_an_outgoing_calls_line_gets_the_backends_url_and_method() -> None:
    fields = {"request_method": "GET", "url": "http://127.0.0.1:8000/api/health"}
    assert _line("ecs", _record(**fields))["url"] == {"full": fields["url"]}
    assert _line("gcp", _record(**fields))["httpRequest"] == {"requestMethod": "GET", "requestUrl": fields["url"]}
    assert _line("datadog", _record(**fields))["http"] == {"method": "GET", "url": fields["url"]}
    assert _line("otel", _record(**fields))["attributes"]["url.full"] == fields["url"]


# -- configuration errors --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("options", "error"), [
    ({"fields": "elk"}, "fields: 'elk' is not a field preset; use one of trackline, ecs, gcp, datadog, otel"),
    ({"fields": "gcp"}, "fields: gcp needs gcp_project"),
    ({"fields": "gcp", "gcp_project": ""}, "fields: gcp needs gcp_project"),
    ({"fields": "ecs", "gcp_project": "p"}, "gcp_project is read by fields: gcp only"),
])
def test_a_bad_preset_is_a_one_line_error(tmp_path: Path, options: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        JsonFormatter(**options)
    config = yaml.safe_load((REPO / "conf" / "logging.yaml").read_text())
    config["formatters"]["json_access"].update(options)
    for handler in config["handlers"].values():
        if "filename" in handler:
            handler["filename"] = str(tmp_path / Path(handler["filename"]).name)
    path = tmp_path / "logging.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as raised:
        check_logging_config(path)
    assert str(raised.value) == f"{path}: formatter 'json_access': {_formatter_error(options)}"
    assert "\n" not in str(raised.value)


def _formatter_error(options: dict[str, Any]) -> str:
    try:
        JsonFormatter(**options)
    except ValueError as exc:
        return str(exc)
    raise AssertionError(options)


# -- trackline trace -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("preset", PRESETS)
def test_trace_finds_orders_and_shows_a_request_in_every_preset(tmp_path: Path, preset: str) -> None:
    options = {"gcp_project": "my-project"} if preset == "gcp" else {}
    app, access = JsonFormatter(fields=preset, **options), JsonFormatter(fields=preset, location=False, **options)
    failed = _record("trackline.responses", logging.ERROR, "unhandled exception: GET /api/error", exc=True,
                     **_trace())
    failed.created = CREATED + 0.002
    sent = _record("gunicorn.access", message="%s %s %s", args=("GET", "/api/error", 500),
                   **{**ACCESS, "request_path": "/api/error", "status_code": 500}, **_trace())
    sent.created = CREATED + 0.003
    other = _record(tracking_id="req-2", trace_id="0af7651916cd43dd8448eb211c80319c", span_id=SPAN_ID)
    started = _record(**_trace())  # the first line, written last to its file
    (tmp_path / "app.log").write_text("\n".join(app.format(r) for r in (failed, other, started)) + "\n")
    (tmp_path / "access.log").write_text(access.format(sent) + "\n")

    for wanted in ("req-1", TRACE_ID):
        search = find(wanted, [tmp_path / "app.log", tmp_path / "access.log"])
        assert [(Path(m.source).name, m.offset) for m in search.matches] == [
            ("app.log", search.matches[0].offset), ("app.log", 0), ("access.log", 0)]
        assert search.matches[0].line == app.format(started)
        assert search.malformed == search.unfinished == 0
    assert [m.record["tracking_id"] for m in find("req-2", [tmp_path / "app.log"]).matches] == ["req-2"]

    rows = pretty(find("req-1", [tmp_path / "app.log", tmp_path / "access.log"]).matches)
    level = {"datadog": "error"}.get(preset, "ERROR")
    assert re.match(rf"13:44:07\.720 app\.log +{level} +trackline\.responses +unhandled exception: GET /api/error",
                    rows[1]), rows
    assert rows[2] == "    Traceback (most recent call last):"
    assert rows[-1].startswith("13:44:07.721 access.log") and "gunicorn.access" in rows[-1]
    assert any(row.endswith("RuntimeError: This is a test exception") for row in rows)
