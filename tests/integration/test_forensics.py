"""The operator's forensics with a real ``trackline serve`` (docs/forensics.md): which request killed a worker
and where it was stuck, slow requests while they run, requests a stopping worker gives up, and the answers
gunicorn and the body limit give an app that does not speak the envelope."""

from __future__ import annotations

import contextlib
import signal
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.conf import edit_yaml
from support.http import raw_request
from support.logs import assert_access_line, assert_lines_complete
from support.server import Server, new_server
from support.waiting import wait_until

#: An app nobody here wrote the errors of: HTML pages, no envelope.
PROBE_APP = '''
    import time

    from flask import Flask

    app = Flask(__name__)


    @app.get("/ok")
    def ok():
        return "<p>ok</p>"


    @app.get("/spin")
    def spin():
        return spin_the_cpu()


    def spin_the_cpu():
        deadline, turns = time.monotonic() + 120, 0  # never yields to the gevent loop
        while time.monotonic() < deadline:
            turns += 1
        return f"<p>{turns}</p>"


    @app.get("/sleep/<int:seconds>")
    def sleep(seconds):
        return nap(seconds)


    def nap(seconds):
        time.sleep(seconds)  # gevent's sleep: the loop goes on
        return "<p>slept</p>"


    @app.post("/upload")
    def upload():
        return "<p>uploaded</p>"
'''

SLOW_SECONDS = 1
TIMEOUT = 3
LIMIT = 1024


def probe_server(root: Path, **gunicorn: Any) -> Server:
    """The probe app, one worker, ``timeout`` 3 s, slow requests from 1 s, a 1 KB body limit."""
    code = root / "code"
    code.mkdir(parents=True)
    (code / "probe.py").write_text(textwrap.dedent(PROBE_APP))
    server = new_server(root / "server", env={"TRACKLINE_WORKERS": "1"}, args=["--app", "probe:app"], probe="/ok",
                        warm_up="/ok")
    edit_yaml(server.conf_dir / "gunicorn.yaml",
              lambda s: s.update(pythonpath=str(code), timeout=TIMEOUT, graceful_timeout=5, **gunicorn))
    (server.conf_dir / "app.yaml").write_text(f"TRACKLINE_SLOW_REQUEST_SECONDS: {SLOW_SECONDS}\n"
                                              f"MAX_CONTENT_LENGTH: {LIMIT}\n")
    return server


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = probe_server(tmp_path_factory.mktemp("probe")).start()
    yield server
    server.stop()
    assert_lines_complete(server.log_dir)


def in_background(send: Any) -> threading.Thread:
    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def get_quietly(server: Server, path: str, tracking_id: str, timeout: float = 60.0) -> None:
    """GET that a worker may never answer (a reset, a closed connection)."""
    with contextlib.suppress(OSError):
        server.request(path, headers={"X-Tracking-ID": tracking_id}, timeout=timeout)


def lines(server: Server, name: str, tracking_id: str) -> list[dict[str, Any]]:
    return [r for r in server.logs(name) if r["tracking_id"] == tracking_id]


def test_a_slow_request_is_warned_about_while_it_runs_and_its_access_line_says_slow(probe: Server) -> None:
    sleeper = in_background(lambda: get_quietly(probe, "/sleep/3", "slow-1"))
    warning = wait_until(lambda: next((r for r in lines(probe, "error.log", "slow-1")), None), "slow WARNING")
    assert sleeper.is_alive()  # logged while the request still runs
    assert (warning["level"], warning["logger"]) == ("WARNING", "gunicorn.error")
    assert (warning["request_method"], warning["request_path"]) == ("GET", "/sleep/3")
    assert SLOW_SECONDS <= warning["request_time"] < 3 and "trace_id" in warning
    assert "GET /sleep/3 still running after" in warning["message"]
    sleeper.join(10)
    [access] = wait_until(lambda: lines(probe, "access.log", "slow-1"), "slow access line")
    assert_access_line(access)
    assert (access["status_code"], access["slow"]) == (200, True)
    assert len(lines(probe, "error.log", "slow-1")) == 1  # one WARNING per request
    quick = probe.get("/ok", headers={"X-Tracking-ID": "quick-1"})
    assert quick.status == 200
    [fast] = wait_until(lambda: lines(probe, "access.log", "quick-1"), "quick access line")
    assert "slow" not in fast


#: Requests gunicorn refuses before the app, and one over the body limit: (request, status, Content-Type detail).
REFUSED = {
    "version": (b"GET /ok HTTP/9.x\r\nHost: x\r\n\r\n", 400, "Invalid HTTP Version: 'HTTP/9.x'"),
    "request-line": (b"GET /ok?q=caf\xe9 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "Invalid HTTP request line: "),
    "uri-too-long": (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "Request Line is too large"),
    "header-too-large": (b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431,
                         "limit request headers fields size"),
    "body-too-large": (b"POST /upload HTTP/1.1\r\nHost: x\r\nX-Tracking-ID: big-1\r\nContent-Length: 2048\r\n\r\n"
                       + b"x" * 2048, 413, "POST /upload request entity too large"),
}


@pytest.mark.parametrize("name", REFUSED)
def test_an_app_without_the_envelope_gets_plain_text_refusals_with_the_status_and_tracking_id(
        probe: Server, name: str) -> None:
    request, status, detail = REFUSED[name]
    response = raw_request(probe.port, request)
    assert response.status == status
    tracking_id = response.headers["X-Tracking-ID"]
    assert "X-DateTime" in response.headers
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    text = response.body.decode()
    first, *rest = text.splitlines()
    assert first.startswith(f"{status} ") and rest[-1] == f"tracking ID: {tracking_id}"
    assert detail in text and text.count("Invalid") <= 1, text  # gunicorn's detail, said once
    assert len(response.body) < 300  # a short page
    [access] = wait_until(lambda: lines(probe, "access.log", tracking_id), f"{name} access line")
    assert access["status_code"] == status


def test_an_unparsed_request_has_dashes_in_its_access_message(probe: Server) -> None:
    response = raw_request(probe.port, b"GET /ok HTTP/9.x\r\nHost: x\r\n\r\n")
    [access] = wait_until(lambda: lines(probe, "access.log", response.headers["X-Tracking-ID"]), "access line")
    assert access["message"] == "- - 400" and access["request_method"] is None


def test_a_request_that_blocks_the_loop_past_timeout_is_named_with_its_stack_and_the_worker_comes_back(
        tmp_path: Path) -> None:
    server = probe_server(tmp_path).start()
    try:
        [worker] = server.live_workers()
        waiter = in_background(lambda: get_quietly(server, "/sleep/30", "waiting-1"))
        wait_until(lambda: lines(server, "error.log", "waiting-1"), "the waiter is slow")  # it is in flight
        in_background(lambda: get_quietly(server, "/spin", "spin-1"))
        error = wait_until(lambda: next((r for r in lines(server, "error.log", "spin-1") if r["level"] == "ERROR"),
                                        None), "the aborted request's ERROR line")
        assert error["logger"] == "gunicorn.error" and error["pid"] == worker
        assert (error["request_method"], error["request_path"], error["blocked_worker"]) == ("GET", "/spin", True)
        assert error["request_time"] >= TIMEOUT and len(error["trace_id"]) == 32
        assert "GET /spin" in error["message"] and "timeout" in error["message"]
        stack = error["stack_info"]
        assert stack.startswith("Stack (most recent call last):") and "in spin_the_cpu" in stack, stack
        assert stack.rstrip().splitlines()[-2].strip().startswith('File "') and "probe.py" in stack
        [access] = wait_until(lambda: lines(server, "access.log", "spin-1"), "the aborted request's access line")
        assert_access_line(access)
        assert (access["status_code"], access["completed"], access["request_path"]) == (504, False, "/spin")
        assert access["message"] == "GET /spin 504"
        # the worker comes back: gunicorn starts another, which serves
        new = wait_until(lambda: (live := server.live_workers()) and worker not in live and live, "a new worker")
        assert server.get("/ok").status == 200 and new
        waiter.join(30)
        assert len(lines(server, "access.log", "spin-1")) == 1
    finally:
        server.stop()
    assert_lines_complete(server.log_dir)


def test_requests_still_running_when_a_stopping_worker_reaches_graceful_timeout_are_named(tmp_path: Path) -> None:
    server = probe_server(tmp_path).start()
    sleeper = in_background(lambda: get_quietly(server, "/sleep/60", "stuck-in-stop-1"))
    wait_until(lambda: lines(server, "error.log", "stuck-in-stop-1"), "the request is in flight (slow)")
    server.signal(signal.SIGTERM)
    error = wait_until(lambda: next((r for r in lines(server, "error.log", "stuck-in-stop-1")
                                     if r["level"] == "ERROR"), None), "the abandoned request's ERROR line", 15)
    assert "graceful_timeout" in error["message"] and error["request_path"] == "/sleep/60"
    assert "in nap" in error["stack_info"]  # where it waited
    [access] = wait_until(lambda: lines(server, "access.log", "stuck-in-stop-1"), "its access line")
    assert (access["status_code"], access["completed"]) == (504, False)
    server.stop()
    sleeper.join(5)
    assert len(lines(server, "access.log", "stuck-in-stop-1")) == 1
    assert_lines_complete(server.log_dir)
