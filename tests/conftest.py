"""Fixtures only (the helpers they use are in support/): the app with logging in tmp_path, and a real gunicorn
on 127.0.0.1."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from support.flask_client import client_for
from support.logs import LogReader, assert_contract, assert_lines_complete, read_json_lines
from support.paths import CONF
from support.server import Server, new_server
from trackline.demo import create_app
from trackline.logs import configure_logging


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Any]:
    """Factory: ``make_server(env={...}, name="a", args=[...])`` copies ./conf and returns an unstarted Server."""
    servers: list[Server] = []

    def make(env: dict[str, str] | None = None, name: str = "server", **options: Any) -> Server:
        server = new_server(tmp_path / name, env, **options)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
    for server in servers:
        if server.log_dir.is_dir():
            assert_lines_complete(server.log_dir)


@pytest.fixture
def server(make_server: Any) -> Server:
    """A started trackline (2 gevent workers) on an ephemeral loopback port."""
    return make_server().start()


@pytest.fixture
def app() -> Flask:
    return create_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return client_for(app)


def _loggers() -> dict[str, logging.Logger]:
    loggers = {name: lg for name, lg in logging.Logger.manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    return {"": logging.getLogger(), **loggers}


@pytest.fixture
def clean_logging() -> Iterator[None]:
    """Undo whatever logging config a test applies: close its handlers, restore every logger's state."""
    saved = {name: (lg.handlers[:], lg.level, lg.propagate, lg.disabled) for name, lg in _loggers().items()}
    yield
    for name, logger in _loggers().items():
        handlers, level, propagate, disabled = saved.get(name, ([], logging.NOTSET, True, False))
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate, logger.disabled = propagate, disabled


@pytest.fixture
def logging_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of conf/logging.yaml whose files go to tmp_path/logs (TRACKLINE_LOG_DIR)."""
    monkeypatch.setenv("TRACKLINE_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.delenv("TRACKLINE_LOG_LEVEL", raising=False)
    return Path(shutil.copy(CONF / "logging.yaml", tmp_path / "logging.yaml"))


@pytest.fixture
def logged(logging_yaml: Path, clean_logging: None) -> LogReader:
    """Logging configured from the YAML copy; returns ``read(name="app.log")``: its lines, contract-checked."""
    configure_logging(logging_yaml)

    def read(name: str = "app.log") -> list[dict[str, Any]]:
        records = read_json_lines(logging_yaml.parent / "logs" / name)
        for record in records:
            assert_contract(record)
        return records

    return read


@pytest.fixture
def app_log(logged: LogReader, logging_yaml: Path) -> Path:
    """Logging configured like ``logged``; the path of its app.log."""
    return logging_yaml.parent / "logs" / "app.log"
