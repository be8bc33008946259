"""The in-flight registry on its own: slow WARNINGs once per request, in its scope; a request given up logs its
ERROR and one 504 access line (never completed), and gunicorn's own later line is dropped."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import greenlet
import pytest

from trackline import context, redaction
from trackline.appconfig import AppConfig
from trackline.config import ConfigError
from trackline.server import inflight
from trackline.server.access import AccessSample, JsonLogger
from trackline.wsgi import TRACKING_ID_KEY


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        record.tracking_id = context.get_tracking_id()  # what the filter reads, at the time of the record
        self.records.append(record)


@pytest.fixture
def logs() -> Iterator[tuple[Records, Records]]:
    error, access = Records(), Records()
    loggers = [logging.getLogger("test.inflight.error"), logging.getLogger("test.inflight.access")]
    for logger, handler in zip(loggers, (error, access), strict=True):
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    inflight.slow_seconds = 1.0
    yield error, access
    inflight.slow_seconds = None
    inflight._requests.clear()
    _suspended.clear()
    for logger, handler in zip(loggers, (error, access), strict=True):
        logger.removeHandler(handler)


class BareLogger(JsonLogger):
    """trackline's access(), on the test's loggers (no gunicorn setup)."""

    access_log_enabled = True  # type: ignore[assignment]

    def __init__(self, error: logging.Logger, access: logging.Logger) -> None:
        self.error_log, self.access_log = error, access
        self.redactor, self.sample = redaction.active(), AccessSample({})  # what setup() makes without app.yaml


def worker(error: logging.Logger, access: logging.Logger) -> Any:
    return SimpleNamespace(log=BareLogger(error, access))


def request(tracking_id: str, path: str = "/x", id_in_environ: bool = True) -> dict[str, Any]:
    """A request registered by a greenlet of its own, in its scope, left suspended in the app (as a worker's)."""
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path}
    if id_in_environ:
        environ[TRACKING_ID_KEY] = tracking_id
    caller = greenlet.getcurrent()

    def serve() -> None:
        context.enter(tracking_id)
        inflight.start(environ)
        caller.switch()

    served = greenlet.greenlet(serve)
    served.switch()
    _suspended.append(served)
    return environ


_suspended: list[greenlet.greenlet] = []


def test_a_slow_request_is_warned_about_once_in_its_scope(logs: tuple[Records, Records]) -> None:
    error, _ = logs
    environ = request("slow-1", "/slow", id_in_environ=False)  # its scope, from its greenlet's context
    [registered] = inflight.in_flight()
    inflight.check_slow(logging.getLogger("test.inflight.error"), registered.started + 0.5)
    assert error.records == []
    for _ in range(3):
        inflight.check_slow(logging.getLogger("test.inflight.error"), registered.started + 1.5)
    [warning] = error.records
    assert (warning.levelno, warning.tracking_id) == (logging.WARNING, "slow-1")
    assert (warning.request_path, warning.request_time) == ("/slow", 1.5)  # type: ignore[attr-defined]
    inflight.finish(environ)
    assert inflight.in_flight() == []
    assert inflight.is_slow(timedelta(seconds=1)) and not inflight.is_slow(timedelta(seconds=0.9))


def test_a_request_given_up_has_one_error_and_one_never_completed_access_line(logs: tuple[Records, Records]) -> None:
    error, access = logs
    environ = request("lost-1", "/lost")
    w = worker(logging.getLogger("test.inflight.error"), logging.getLogger("test.inflight.access"))
    inflight.report_abandoned(w, 30)
    inflight.report_abandoned(w, 30)  # once per request
    [line] = error.records
    assert (line.levelno, line.tracking_id, line.request_path) == (logging.ERROR, "lost-1", "/lost")  # type: ignore[attr-defined]
    [access_line] = access.records
    assert (access_line.status_code, access_line.completed, access_line.tracking_id) == (504, False, "lost-1")  # type: ignore[attr-defined]
    assert access_line.getMessage() == "GET /lost 504"
    # it ended after all: gunicorn's own line is dropped, the 504 stands (one access line per request)
    w.log.access(SimpleNamespace(status="200 OK", sent=2), None, environ, timedelta(seconds=31))
    assert len(access.records) == 1


def test_an_unparsed_request_is_dashes_in_the_access_message(logs: tuple[Records, Records]) -> None:
    _, access = logs
    w = worker(logging.getLogger("test.inflight.error"), logging.getLogger("test.inflight.access"))
    w.log.access(SimpleNamespace(status="400 Bad Request", response_length=10), None, {"REMOTE_ADDR": "127.0.0.1"},
                 timedelta(0))
    assert access.records[0].getMessage() == "- - 400"


@pytest.mark.parametrize("value", [0, -1, "10", True])
def test_the_slow_threshold_is_checked(value: Any) -> None:
    with pytest.raises(ConfigError, match="TRACKLINE_SLOW_REQUEST_SECONDS: must be a number of seconds"):
        AppConfig.from_settings({"TRACKLINE_SLOW_REQUEST_SECONDS": value})
    assert AppConfig.from_settings({}).slow_request_seconds == 10.0
    assert AppConfig.from_settings({"TRACKLINE_SLOW_REQUEST_SECONDS": None}).slow_request_seconds is None
    assert AppConfig.from_settings({"TRACKLINE_SLOW_REQUEST_SECONDS": 2.5}).slow_request_seconds == 2.5
