"""Celery's own task lines through trackline (``trackline.worker.task_lines``): Celery's real trace code runs eager
tasks and logs; the lines name the task, its ID, state and runtime, never its arguments or result, unless
``task_payloads`` is on, and then redacted. worker.yaml's ``task_payloads`` is checked in one line."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.conf import edit_yaml
from support.paths import CONF
from trackline.config import ConfigError

pytest.importorskip("celery", reason="the celery extra is not installed")

from celery import Celery
from celery.app import trace

from trackline.celery import instrument
from trackline.worker import task_lines
from trackline.worker.settings import load_worker_config

SECRET = "hunter2-unit"


class Kept(logging.Handler):
    """Every record the logger passes on, as the formatter will see it."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        record.message = record.getMessage()
        self.records.append(record)


@pytest.fixture
def kept() -> Iterator[Kept]:
    handler = Kept()
    loggers = [logging.getLogger(name) for name in task_lines.LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield handler
    task_lines.install(False)  # no result kept by task_success any more
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)
        for made in [made for made in logger.filters if isinstance(made, task_lines.TaskLines)]:
            logger.removeFilter(made)


APP = Celery("unit-task-lines", set_as_current=False, broker="memory://", backend="cache+memory://")


@APP.task(name="unit.sign_in")
def sign_in(blob: str, options: dict[str, Any], password: str, fail: bool = False) -> dict[str, Any]:
    if fail:
        raise PermissionError("refused")
    return {"password": password, "blob": blob}


def eager_app(payloads: bool) -> Celery:
    return instrument(APP, task_payloads=payloads)


def run(app: Celery, kept: Kept, fail: bool = False) -> logging.LogRecord:
    """Celery's result line of one sign_in run by Celery's own tracer."""
    task = app.tasks["unit.sign_in"]
    tracer = trace.build_tracer(task.name, task, app=app, eager=False)
    tracer("task-1", ("b" * 100, {"token": "t0k3n", "plain": "kept"}), {"password": SECRET, "fail": fail},
           {"id": "task-1"})
    [line] = [record for record in kept.records if record.name == "celery.app.trace"]
    return line


def test_a_succeeded_line_names_the_task_its_state_and_runtime_only(kept: Kept) -> None:
    line = run(eager_app(False), kept)
    assert line.message.startswith("Task unit.sign_in[task-1] succeeded in ") and line.message.endswith("s")
    assert set(line.data) == {"id", "name", "runtime", "state"}
    assert (line.data["state"], line.args["id"]) == ("SUCCESS", "task-1")
    assert SECRET not in line.message and "bbbb" not in str(line.__dict__)


def test_a_failed_line_keeps_the_exception_and_loses_the_arguments(kept: Kept) -> None:
    line = run(eager_app(False), kept, fail=True)
    assert line.message == "Task unit.sign_in[task-1] raised unexpected: PermissionError('refused')"
    assert {"args", "kwargs"}.isdisjoint(line.data) and line.data["state"] == "FAILURE"
    assert SECRET not in str(line.data)


def test_payloads_on_log_the_values_with_listed_keys_redacted(kept: Kept) -> None:
    line = run(eager_app(True), kept)
    assert line.data["args"] == ["b" * 100, {"token": "[REDACTED]", "plain": "kept"}]
    assert line.data["kwargs"] == {"password": "[REDACTED]", "fail": False}
    assert line.data["result"] == {"password": "[REDACTED]", "blob": "b" * 100}
    assert SECRET not in line.message


def test_the_received_line_and_a_request_info_lose_the_payload(kept: Kept) -> None:
    eager_app(True)  # payloads on: the received line has only reprs, it never carries them
    strategy = logging.getLogger("celery.worker.strategy")
    context = {"id": "task-2", "name": "unit.sign_in", "args": "('bbb',)", "kwargs": f"{{'password': '{SECRET}'}}",
               "eta": None}
    strategy.info(trace.LOG_RECEIVED, context, extra={"data": context})
    strategy.error("Couldn't convert ETA %r to timestamp: %r. Task: %r", "soon", ValueError("x"),
                   {"id": "task-2", "args": "('bbb',)", "kwargs": f"{{'password': '{SECRET}'}}"})
    received, eta = kept.records
    assert received.message == "Task unit.sign_in[task-2] received"
    assert received.data == {"id": "task-2", "name": "unit.sign_in", "eta": None, "state": "RECEIVED"}
    assert SECRET not in eta.message and "'id': 'task-2'" in eta.message


def test_installing_again_replaces_the_filter(kept: Kept) -> None:
    eager_app(True)
    eager_app(False)
    for name in task_lines.LOGGERS:
        [made] = [made for made in logging.getLogger(name).filters if isinstance(made, task_lines.TaskLines)]
        assert made.payloads is False


@pytest.mark.parametrize(("value", "payloads"), [(True, True), ("true", True), ("False", False), (None, None)])
def test_worker_yaml_task_payloads(value: Any, payloads: bool | None, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKLINE_LOG_DIR", str(tmp_path / "logs"))
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    assert load_worker_config(conf).task_payloads is False  # the default
    edit_yaml(conf / "worker.yaml", lambda worker: worker.update(task_payloads=value if value is not None else "maybe"))
    if payloads is not None:
        assert load_worker_config(conf).task_payloads is payloads
        return
    with pytest.raises(ConfigError) as error:
        load_worker_config(conf)
    assert str(error.value) == f"{conf / 'worker.yaml'}: task_payloads must be true or false, not 'maybe'"


def test_the_worker_names_its_log_file_and_keeps_the_handler_a_buffer_writes_to(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKLINE_LOG_DIR", str(tmp_path / "logs"))
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    assert load_worker_config(conf).describe().endswith(f", logging to {tmp_path / 'logs' / 'worker.log'}")

    def buffered(config: dict[str, Any]) -> None:
        config["handlers"]["buffer"] = {"class": "logging.handlers.MemoryHandler", "capacity": 100,
                                        "target": "worker_file"}
    edit_yaml(conf / "logging.yaml", buffered)
    edit_yaml(conf / "worker.yaml", lambda worker: worker.update(log_handlers=["buffer"]))
    worker = load_worker_config(conf)
    assert set(worker.logging["handlers"]) == {"buffer", "worker_file"}  # the buffer's target is kept
    assert worker.describe().endswith(f", logging to {tmp_path / 'logs' / 'worker.log'}")
