"""Field presets in a real ``trackline serve`` run: every line of app.log, access.log and error.log (a request, a
500 with its traceback, a traceback gunicorn logs, an ID trackline replaced and one gunicorn refused) parses and
has the backend's fields with the backend's types, and ``trackline trace`` finds each request's lines."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

CONF = Path(__file__).resolve().parents[2] / "conf"
TRACKLINE = Path(sys.executable).with_name("trackline")
PRESETS = ("ecs", "gcp", "datadog", "otel")
PROJECT = "trackline-presets"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
#: By hand: the GCP trace resource name, and the decimal of the trace ID's lower 64 bits
#: (``echo "ibase=16; A3CE929D0E0E4736" | bc``) that Datadog's dd.trace_id carries.
GCP_TRACE = "projects/trackline-presets/traces/4bf92f3577b34da6a3ce929d0e0e4736"
DD_TRACE_ID = "11803532876627986230"
HEX32, HEX16 = re.compile(r"[0-9a-f]{32}"), re.compile(r"[0-9a-f]{16}")
FILES = ("app.log", "access.log", "error.log")
#: ``post_request`` fails on /api/item: gunicorn logs its traceback in error.log, with the request's ID.
HOOK = '''
def post_request(worker, req, environ, resp):
    if req.path == "/api/item":
        raise RuntimeError("the operator's hook failed")
'''


@dataclass
class Run:
    """One server's run in one preset: each request's status and effective ID, and every line it logged."""

    preset: str
    log_dir: Path
    statuses: dict[str, int]
    ids: dict[str, str]
    logs: dict[str, list[dict[str, Any]]]
    raw: dict[str, list[str]]

    def lines_of(self, tracking_id: str) -> list[str]:
        return [line for name in FILES for line, record in zip(self.raw[name], self.logs[name], strict=True)
                if record["tracking_id"] == tracking_id]


def _get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
            response.read()
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        error.read()
        return error.code, dict(error.headers)


def _raw_get(port: int, request: bytes) -> tuple[int, dict[str, str]]:
    """Send ``request`` as is (gunicorn refuses it); the status and headers of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    return int(head[0].split()[1]), dict(line.split(": ", 1) for line in head[1:])


def _edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _set_preset(preset: str) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        for name in ("json", "json_access"):
            config["formatters"][name]["fields"] = preset
            if preset == "gcp":
                config["formatters"][name]["gcp_project"] = PROJECT
    return change


def _stop(process: subprocess.Popen[bytes]) -> int:
    """TERM our own server (by its PID) and wait; kill it if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(40)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def _port(log_dir: Path, process: subprocess.Popen[bytes], output: Path) -> int:
    """The port gunicorn says it listens on (error.log, whatever the preset), once a request gets an answer."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, output.read_text(errors="replace")
        error_log = log_dir / "error.log"
        found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", error_log.read_text()) \
            if error_log.exists() else None
        if found:
            try:
                if _get(f"http://127.0.0.1:{found[1]}/api/names", {})[0] == 200:
                    return int(found[1])
            except OSError:
                pass
        time.sleep(0.1)
    raise AssertionError(f"trackline serve did not answer: {output.read_text(errors='replace')}")


def _serve(root: Path, preset: str) -> Run:
    """``trackline serve`` (one gevent worker) in ``preset``: its requests, then a graceful stop, then its logs."""
    conf, log_dir = root / "conf", root / "logs"
    shutil.copytree(CONF, conf)
    _edit(conf / "logging.yaml", _set_preset(preset))
    (root / "presets_hook.py").write_text(HOOK)
    _edit(conf / "gunicorn.yaml", lambda settings: settings.update(post_request="presets_hook.post_request"))
    env = {**os.environ, "TRACKLINE_LOG_DIR": str(log_dir), "TRACKLINE_RUN_DIR": str(root / "run"),
           "TRACKLINE_BIND": "127.0.0.1:0", "TRACKLINE_WORKERS": "1", "PYTHONPATH": str(root)}
    output = root / "server.out"
    with output.open("ab") as out:
        process = subprocess.Popen([str(TRACKLINE), "serve", "--conf-dir", str(conf)], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, cwd=root)
    try:
        port = _port(log_dir, process, output)
        url = f"http://127.0.0.1:{port}"
        sent = {
            "ok": _get(f"{url}/api/health?n=1", {"X-Tracking-ID": f"{preset}-ok", "traceparent": TRACEPARENT,
                                                 "User-Agent": "presets/1", "Referer": "http://client.test/"}),
            "failed": _get(f"{url}/api/error", {"X-Tracking-ID": f"{preset}-500"}),
            "replaced": _get(f"{url}/api/health", {"X-Tracking-ID": "bad id"}),
            "hook": _get(f"{url}/api/item", {"X-Tracking-ID": f"{preset}-hook"}),
            "refused": _raw_get(port, b"GET /api/names HTTP/1.1\r\nHost: t\r\nX-Tracking-ID: a\x01b\r\n"
                                      b"Connection: close\r\n\r\n"),
        }
    finally:
        assert _stop(process) == 0, output.read_text(errors="replace")
    raw = {name: (log_dir / name).read_text(encoding="utf-8").splitlines() for name in FILES}
    for name in FILES:
        assert (log_dir / name).read_bytes().endswith(b"\n"), name
    logs = {name: [json.loads(line) for line in lines] for name, lines in raw.items()}
    return Run(preset, log_dir, {name: status for name, (status, _) in sent.items()},
               {name: headers["X-Tracking-ID"] for name, (_, headers) in sent.items()}, logs, raw)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Run]:
    """One server per preset, started by the first test that asks for it."""
    done: dict[str, Run] = {}

    def run(preset: str) -> Run:
        if preset not in done:
            done[preset] = _serve(tmp_path_factory.mktemp(preset), preset)
        return done[preset]

    return run


# -- each backend's fields and types ---------------------------------------------------------------------------

def _timestamp(value: Any) -> None:
    assert isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None, value


def _text(value: Any) -> None:
    assert isinstance(value, str) and value, value


#: Top-level names an ECS line may have: ECS fields, and trackline's tracking_id; anything else is in labels.
ECS_TOP = {"@timestamp", "log.level", "message", "ecs.version", "tracking_id", "log", "process", "trace", "span",
           "http", "url", "client", "user_agent", "event", "error", "labels"}


def _ecs(record: dict[str, Any], file: str) -> None:
    """https://github.com/elastic/ecs-logging/blob/main/spec/spec.json and the ECS 8 field reference."""
    assert list(record)[:4] == ["@timestamp", "log.level", "message", "ecs.version"]
    _timestamp(record["@timestamp"])
    _text(record["log.level"])
    assert isinstance(record["message"], str)
    assert record["ecs.version"] == "8.11.0"
    assert set(record) <= ECS_TOP, set(record) - ECS_TOP
    _text(record["log"]["logger"])
    assert isinstance(record["process"]["pid"], int)
    assert all("." not in key and not isinstance(value, dict) for key, value in record.get("labels", {}).items())
    if "trace" in record:
        assert HEX32.fullmatch(record["trace"]["id"]) and HEX16.fullmatch(record["span"]["id"])
    if "error" in record:
        _text(record["error"]["stack_trace"])
        _text(record["error"]["type"])
    if file == "access.log":
        assert "origin" not in record["log"]
        response = record["http"]["response"]
        assert isinstance(response["status_code"], int) and isinstance(response["body"]["bytes"], int)
        assert isinstance(record["event"]["duration"], int) and record["event"]["duration"] >= 0  # nanoseconds
        _text(record["client"]["ip"])
        if "request" in record["http"]:  # a request gunicorn could parse
            _text(record["http"]["request"]["method"])
            _text(record["url"]["path"])
    else:
        assert isinstance(record["log"]["origin"]["file"]["line"], int)


SEVERITIES = {"DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY"}
TRACE_RESOURCE = re.compile(rf"projects/{PROJECT}/traces/[0-9a-f]{{32}}")


def _gcp(record: dict[str, Any], file: str) -> None:
    """https://cloud.google.com/logging/docs/structured-logging and LogEntry's HttpRequest."""
    _timestamp(record["time"])
    assert record["severity"] in SEVERITIES
    assert isinstance(record["message"], str)
    if "logging.googleapis.com/trace" in record:
        assert TRACE_RESOURCE.fullmatch(record["logging.googleapis.com/trace"])
        assert HEX16.fullmatch(record["logging.googleapis.com/spanId"])
    assert isinstance(record.get("logging.googleapis.com/trace_sampled", True), bool)
    assert "trace_id" not in record and "span_id" not in record
    if "stack_trace" in record:
        _text(record["stack_trace"])
    if file == "access.log":
        request = record["httpRequest"]
        assert isinstance(request["status"], int)
        assert isinstance(request["responseSize"], str) and request["responseSize"].isdigit()  # int64 in JSON
        assert re.fullmatch(r"\d+(\.\d{3}|\.\d{6}|\.\d{9})?s", request["latency"])  # a Duration
        _text(request["remoteIp"])
        if "requestMethod" in request:
            _text(request["requestMethod"])
            assert request["requestUrl"].startswith("/")
    else:
        location = record["logging.googleapis.com/sourceLocation"]
        _text(location["file"])
        assert location["line"].isdigit()


def _datadog(record: dict[str, Any], file: str) -> None:
    """https://docs.datadoghq.com/standard-attributes/ and Datadog's trace ID convention."""
    _timestamp(record["timestamp"])
    assert record["status"] in {"debug", "info", "warning", "error", "critical"}
    assert isinstance(record["message"], str)
    _text(record["logger"]["name"])
    if "trace_id" in record:
        assert record["dd.trace_id"] == str(int(record["trace_id"][16:], 16))
        assert record["dd.span_id"] == str(int(record["span_id"], 16))
    if "error" in record:
        _text(record["error"]["stack"])
        _text(record["error"]["kind"])
    if file == "access.log":
        assert isinstance(record["http"]["status_code"], int)
        assert isinstance(record["network"]["bytes_written"], int)
        _text(record["network"]["client"]["ip"])
        assert isinstance(record["duration"], int)  # nanoseconds
        if "method" in record["http"]:
            _text(record["http"]["method"])
            assert record["http"]["url"].startswith("/")


def _otel(record: dict[str, Any], file: str) -> None:
    """https://opentelemetry.io/docs/specs/otel/logs/data-model/ and .../compatibility/logging_trace_context/."""
    _timestamp(record["timestamp"])
    _text(record["severity_text"])
    assert isinstance(record["severity_number"], int) and 1 <= record["severity_number"] <= 24
    assert isinstance(record["body"], str)
    assert isinstance(record["attributes"], dict)
    assert isinstance(record["resource"]["attributes"]["process.pid"], int)
    _text(record["instrumentation_scope"]["name"])
    if "trace_id" in record:
        assert HEX32.fullmatch(record["trace_id"]) and HEX16.fullmatch(record["span_id"])
    if "trace_flags" in record:
        assert re.fullmatch(r"[0-9a-f]{2}", record["trace_flags"])
    attributes = record["attributes"]
    if "exception.stacktrace" in attributes:
        _text(attributes["exception.type"])
    if file == "access.log":
        assert isinstance(attributes["http.response.status_code"], int)
        assert isinstance(attributes["http.response.body.size"], int)
        assert isinstance(attributes["http.server.request.duration"], float)
        if "http.request.method" in attributes:
            _text(attributes["url.path"])
    else:
        assert isinstance(attributes["code.line.number"], int)


CHECKS = {"ecs": _ecs, "gcp": _gcp, "datadog": _datadog, "otel": _otel}
#: Where each preset keeps the message and the traceback.
MESSAGE = {"ecs": ("message",), "gcp": ("message",), "datadog": ("message",), "otel": ("body",)}
TRACEBACK = {"ecs": ("error", "stack_trace"), "gcp": ("stack_trace",), "datadog": ("error", "stack"),
             "otel": ("attributes", "exception.stacktrace")}


def _at(record: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = record
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


@pytest.mark.parametrize("preset", PRESETS)
def test_every_line_has_the_backends_fields_with_its_types(runs: Callable[[str], Run], preset: str) -> None:
    run = runs(preset)
    assert run.statuses == {"ok": 200, "failed": 500, "replaced": 200, "hook": 200, "refused": 400}
    for file in FILES:
        assert run.logs[file], file
        for record in run.logs[file]:
            assert "tracking_id" in record and isinstance(record["tracking_id"], (str, type(None))), record
            CHECKS[preset](record, file)

    def lines(file: str, name: str) -> list[dict[str, Any]]:
        return [r for r in run.logs[file] if r["tracking_id"] == run.ids[name]]

    # what each request left, in this preset's names
    for name in run.ids:
        assert len(lines("access.log", name)) == 1, name
    [failed] = lines("app.log", "failed")
    assert _at(failed, MESSAGE[preset]) == "unhandled exception: GET /api/error"
    assert _at(failed, TRACEBACK[preset]).endswith("RuntimeError: This is a test exception")
    [hook] = lines("error.log", "hook")
    assert _at(hook, TRACEBACK[preset]).endswith("RuntimeError: the operator's hook failed")
    [replaced] = lines("app.log", "replaced")[:1]
    assert _at(replaced, MESSAGE[preset]) == "replaced invalid tracking ID from X-Tracking-ID"
    [refused] = lines("error.log", "refused")
    assert _at(refused, MESSAGE[preset]).startswith("Invalid request from ip=127.0.0.1")
    rejected = {"ecs": ("labels", "rejected_tracking_id"), "gcp": ("rejected_tracking_id",),
                "datadog": ("rejected_tracking_id",), "otel": ("attributes", "rejected_tracking_id")}[preset]
    assert _at(replaced, rejected) == "bad id"
    assert any(_at(r, MESSAGE[preset]).startswith("Booting worker") for r in run.logs["error.log"])


def test_gcp_trace_path_and_datadog_ids_are_the_values_computed_by_hand(runs: Callable[[str], Run]) -> None:
    gcp = runs("gcp")
    ok = gcp.lines_of(gcp.ids["ok"])
    assert len(ok) == 2  # the health check's app line and its access line
    assert all(json.loads(line)["logging.googleapis.com/trace"] == GCP_TRACE for line in ok)
    datadog = runs("datadog")
    ok = datadog.lines_of(datadog.ids["ok"])
    assert len(ok) == 2
    assert all(json.loads(line)["dd.trace_id"] == DD_TRACE_ID for line in ok)


def _trace(run: Run, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TRACKLINE), "trace", *args, "--log-dir", str(run.log_dir)], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("preset", PRESETS)
def test_trackline_trace_finds_each_request_and_shows_it(runs: Callable[[str], Run], preset: str) -> None:
    run = runs(preset)
    for name, tracking_id in run.ids.items():
        done = _trace(run, tracking_id)
        assert (done.returncode, done.stderr) == (0, ""), (name, done.stderr)
        assert sorted(done.stdout.splitlines()) == sorted(run.lines_of(tracking_id)), name
    by_trace = _trace(run, TRACE_ID)
    assert sorted(by_trace.stdout.splitlines()) == sorted(run.lines_of(run.ids["ok"]))

    shown = _trace(run, run.ids["failed"], "--pretty")
    level = "error" if preset == "datadog" else "ERROR"
    assert re.search(rf" app\.log +{level} +trackline\.responses +unhandled exception: GET /api/error",
                     shown.stdout), shown.stdout
    assert re.search(r" access\.log +\S+ +gunicorn\.access +GET /api/error 500", shown.stdout), shown.stdout
    assert "    RuntimeError: This is a test exception" in shown.stdout.splitlines()
