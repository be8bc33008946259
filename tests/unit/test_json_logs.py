"""JSON logs from conf/logging.yaml: the contract on every line, extras, static fields, ${VAR:-default}, threads."""

from __future__ import annotations

import logging
import logging.config
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from support.conf import edit_yaml
from support.flask_client import client_for
from support.logs import LogReader, assert_contract, read_json_lines
from support.paths import CONF
from support.processes import run_python
from trackline.logs import configure_logging
from trackline.responses import Success


def test_every_line_of_every_file_is_json_with_the_contract(logged: LogReader, client: FlaskClient) -> None:
    client.get("/api/health")
    client.get("/api/error")
    client.get("/api/health", headers={"X-Tracking-ID": "bad id\t\"\\"})
    logging.getLogger("gunicorn.error").info("boot")
    logging.getLogger("gunicorn.access").info("request")
    app_lines = logged("app.log")
    assert {r["level"] for r in app_lines} == {"INFO", "WARNING", "ERROR"}
    assert all(re.fullmatch(r"[\w.]+\.py:\d+", r["loc"]) and r["func"] for r in app_lines)
    assert [r["logger"] for r in logged("error.log")] == ["gunicorn.error"]
    assert [r["logger"] for r in logged("access.log")] == ["gunicorn.access"]


@pytest.mark.parametrize(("tz", "offset"), [("CST-8", "+08:00"), ("NST+3:30", "-03:30"), ("UTC0", "+00:00")])
def test_timestamp_has_milliseconds_and_the_local_offset(
    tz: str, offset: str, logged: LogReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as local:
        local.setenv("TZ", tz)
        time.tzset()
        try:
            logging.getLogger("trackline.test").info("now")
        finally:
            local.undo()
            time.tzset()
    [record] = logged()
    assert record["@timestamp"].endswith(offset)
    stamp = datetime.fromisoformat(record["@timestamp"])
    assert abs(stamp - datetime.now(UTC)) < timedelta(minutes=5)


def test_health_logs_one_line_with_location_and_the_request_id(logged: LogReader, client: FlaskClient) -> None:
    client.get("/api/health", headers={"X-Tracking-ID": "req-1"})
    [record] = logged()
    assert record["tracking_id"] == "req-1"
    assert record["message"] == "Health check"
    assert record["logger"] == "trackline.api"
    assert record["func"] == "health_check"
    assert record["loc"].startswith("common.py:")
    assert "exc_info" not in record


def test_extra_keys_become_top_level_fields(logged: LogReader) -> None:
    logging.getLogger("trackline.test").info("order paid", extra={"order_id": 42, "amount": 9.5, "tags": ["a"]})
    [record] = logged()
    assert (record["order_id"], record["amount"], record["tags"]) == (42, 9.5, ["a"])
    assert "extra" not in record


def test_static_fields_from_yaml_are_on_every_line(logging_yaml: Path, clean_logging: None) -> None:
    def add_static(config: dict[str, Any]) -> None:
        config["formatters"]["json"]["static_fields"] = {"service": "trackline", "env": "test"}

    edit_yaml(logging_yaml, add_static)
    configure_logging(logging_yaml)
    logging.getLogger("trackline.test").info("one")
    logging.getLogger("trackline.test").warning("two")
    records = read_json_lines(logging_yaml.parent / "logs" / "app.log")
    assert [(r["message"], r["service"], r["env"]) for r in records] == [
        ("one", "trackline", "test"), ("two", "trackline", "test")]


def test_location_false_drops_loc_and_func(logged: LogReader) -> None:
    logging.getLogger("gunicorn.access").info("GET /")
    logging.getLogger("gunicorn.error").info("boot")
    [access] = logged("access.log")
    [error] = logged("error.log")
    assert "loc" not in access and "func" not in access
    assert error["loc"] and error["func"]


@pytest.mark.parametrize(
    ("env", "expected_dir"),
    [
        ({"TRACKLINE_LOG_DIR": "set/by/var"}, "set/by/var"),
        ({}, "logs"),
        ({"TRACKLINE_LOG_DIR": ""}, "logs"),
        ({"LOGS_DIRECTORY": "systemd/logs"}, "systemd/logs"),
        ({"TRACKLINE_LOG_DIR": "wins", "LOGS_DIRECTORY": "systemd/logs"}, "wins"),
    ],
    ids=["set", "unset-default", "empty-default", "nested-default", "outer-wins"],
)
def test_var_default_expansion_picks_the_log_dir(
    env: dict[str, str], expected_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_logging: None
) -> None:
    """``${TRACKLINE_LOG_DIR:-${LOGS_DIRECTORY:-logs}}``: the directory is created and the line lands there."""
    monkeypatch.chdir(tmp_path)
    for name in ("TRACKLINE_LOG_DIR", "LOGS_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = configure_logging(CONF / "logging.yaml")
    assert config["handlers"]["app_file"]["filename"] == f"{expected_dir}/app.log"
    logging.getLogger("trackline.test").info("here")
    assert [r["message"] for r in read_json_lines(tmp_path / expected_dir / "app.log")] == ["here"]


def test_logging_at_import_time_before_any_app(logging_yaml: Path) -> None:
    """A module logging as it is imported: no Flask, no app, no request; the line says tracking_id null."""
    script = (
        "import logging, sys, pathlib, trackline.logs\n"
        "trackline.logs.configure_logging(pathlib.Path(sys.argv[1]))\n"
        "logging.getLogger('trackline.early').info('imported')\n"
        "print('flask' in sys.modules)\n"
    )
    done = run_python(script, str(logging_yaml))
    assert (done.returncode, done.stderr, done.stdout) == (0, "", "False\n")
    [record] = read_json_lines(logging_yaml.parent / "logs" / "app.log")
    assert_contract(record)
    assert (record["message"], record["tracking_id"]) == ("imported", None)


def _log_in_plain_thread(message: str) -> list[BaseException]:
    """Log ``message`` from a plain ``threading.Thread``; return what it raised."""
    raised: list[BaseException] = []

    def work() -> None:
        try:
            logging.getLogger("trackline.worker").info(message)
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(10)
    return raised


def test_plain_thread_logs_with_null_tracking_id(logged: LogReader, app: Flask) -> None:
    @app.get("/spawn")
    def spawn() -> Success:
        return Success(data=[repr(exc) for exc in _log_in_plain_thread("in a thread started by a request")])

    outside = _log_in_plain_thread("in a thread outside any request")
    response = client_for(app).get("/spawn", headers={"X-Tracking-ID": "req-thread"})
    assert (outside, response.json["data"]) == ([], [])
    by_message = {r["message"]: r for r in logged()}
    assert by_message["in a thread outside any request"]["tracking_id"] is None
    assert by_message["in a thread started by a request"]["tracking_id"] is None

