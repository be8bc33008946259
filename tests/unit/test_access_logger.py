"""JsonLogger (gunicorn's logger_class) under gevent: each access line in its request's context, written whole."""

from __future__ import annotations

import datetime
import logging
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gevent
import pytest
from gunicorn.config import Config

from support.logs import read_json_lines
from support.processes import run_python
from trackline import context
from trackline.logs import check_logging_config
from trackline.server.access import JsonLogger
from trackline.tracecontext import parse_traceparent
from trackline.wsgi import TRACKING_ID_KEY

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def gunicorn_config(logging_yaml: Path, worker_class: str = "gevent") -> Config:
    cfg = Config()
    cfg.set("logconfig_dict", check_logging_config(logging_yaml))
    cfg.set("worker_class", worker_class)
    return cfg


@pytest.fixture
def gunicorn_logger(logging_yaml: Path, clean_logging: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[JsonLogger]:
    monkeypatch.setattr(logging, "logThreads", logging.logThreads)  # restored after the test
    return JsonLogger(gunicorn_config(logging_yaml))


def report_request(log: JsonLogger, number: int) -> None:
    """What gunicorn's worker does once a request is answered: ``log.access(resp, req, environ, time)``."""
    environ = {TRACKING_ID_KEY: f"id-{number}", "REQUEST_METHOD": "GET", "PATH_INFO": f"/api/names/{number}",
               "QUERY_STRING": "", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
               "HTTP_HOST": "127.0.0.1:8000", "HTTP_USER_AGENT": "test"}
    resp = SimpleNamespace(status_code=200, status="200 OK", sent=83)
    req = SimpleNamespace(headers=[("HOST", "127.0.0.1:8000")], path=environ["PATH_INFO"])
    log.access(resp, req, environ, datetime.timedelta(microseconds=812))


def access_lines(logging_yaml: Path) -> list[dict[str, Any]]:
    path = logging_yaml.parent / "logs" / "access.log"
    return read_json_lines(path) if path.exists() else []


def test_greenlets_access_lines_come_after_the_loop_turn_each_with_its_requests_ids(
        gunicorn_logger: JsonLogger, logging_yaml: Path) -> None:
    def request(number: int) -> None:
        trace = parse_traceparent(f"00-{TRACE_ID}-{number:016x}-01") if number % 2 else None
        token = context.enter(f"id-{number}", trace)
        report_request(gunicorn_logger, number)
        assert all(line["tracking_id"] != f"id-{number}" for line in access_lines(logging_yaml))  # pending
        context.leave(token)  # what the app's close() does right after gunicorn's access() call

    gevent.joinall([gevent.spawn(request, number) for number in range(20)], raise_error=True)
    gevent.idle()  # the loop turns: the write scheduled for it runs, as in a worker
    lines = access_lines(logging_yaml)
    assert [line["request_path"] for line in lines] == [f"/api/names/{number}" for number in range(20)]
    for number, line in enumerate(lines):
        assert line["tracking_id"] == f"id-{number}" and line["status_code"] == 200
        assert line.get("trace_id") == (TRACE_ID if number % 2 else None)
        assert line.get("parent_span_id") == (f"{number:016x}" if number % 2 else None)


def test_outside_a_greenlet_the_line_is_written_at_once(gunicorn_logger: JsonLogger, logging_yaml: Path) -> None:
    report_request(gunicorn_logger, 7)
    assert [line["tracking_id"] for line in access_lines(logging_yaml)] == ["id-7"]


def test_a_worker_exiting_before_the_loop_turns_again_still_writes_its_waiting_lines(
        logging_yaml: Path, tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys, gevent
        sys.path[:0] = {[str(Path(__file__).parent), str(Path(__file__).parents[1])]!r}
        from test_access_logger import gunicorn_config, report_request
        from trackline.server.access import JsonLogger
        from pathlib import Path
        log = JsonLogger(gunicorn_config(Path({str(logging_yaml)!r})))

        def last_request():
            report_request(log, 1)
            access_log = Path({str(logging_yaml.parent / "logs" / "access.log")!r})
            if access_log.exists() and "id-1" in access_log.read_text():
                sys.exit(3)  # already written: this test would prove nothing
            sys.exit(0)  # as gunicorn's worker does on SIGQUIT, from a greenlet

        gevent.spawn(last_request).join()
        raise SystemExit("not reached: the greenlet's exit ends the process")
    """)
    done = run_python(script, env={"TRACKLINE_LOG_DIR": str(logging_yaml.parent / "logs"), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert [line["tracking_id"] for line in access_lines(logging_yaml)] == ["id-1"]


def test_records_skip_the_thread_name_in_a_gevent_worker_only(logging_yaml: Path, clean_logging: None,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logging, "logThreads", True)
    JsonLogger(gunicorn_config(logging_yaml, "gevent"))
    assert logging.makeLogRecord({}).threadName is None  # no gevent dummy thread per request greenlet
    JsonLogger(gunicorn_config(logging_yaml, "sync"))
    assert logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None).threadName == "MainThread"
