"""What trackline writes logs into is not for every user to read, and not a path someone else chose
(issue 28, items 7 and 8: modes, a symbolic link in place of a log file, a non-string task ID)."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from trackline.config import writable_directory
from trackline.logs import WatchedAppendFileHandler


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The umask a developer's shell usually has (scripts/serve runs under it)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def line(handler: logging.Handler, message: str) -> None:
    handler.handle(logging.makeLogRecord({"msg": message, "levelno": 20, "levelname": "INFO"}))


def test_log_files_and_directories_are_0640_and_0750_under_a_permissive_umask(tmp_path: Path, umask_022: None) -> None:
    logs = tmp_path / "logs" / "deeper"
    writable_directory(logs, "logging.yaml", create=True)
    handler = WatchedAppendFileHandler(str(logs / "app.log"), delay=True)
    line(handler, "hello")
    handler.close()
    assert stat.S_IMODE(logs.stat().st_mode) == 0o750
    assert stat.S_IMODE((logs / "app.log").stat().st_mode) == 0o640


def test_a_removed_log_directory_comes_back_0750(tmp_path: Path, umask_022: None) -> None:
    logs = tmp_path / "logs"
    handler = WatchedAppendFileHandler(str(logs / "app.log"), delay=True)  # the directory did not exist at start
    line(handler, "first")
    handler.close()
    assert stat.S_IMODE(logs.stat().st_mode) == 0o750


def test_a_symlink_in_place_of_the_log_file_is_refused_and_said_once(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "secret"
    secret.write_text("root's own\n")
    log = tmp_path / "app.log"
    log.symlink_to(secret)
    handler = WatchedAppendFileHandler(str(log), delay=True)
    for n in range(3):
        line(handler, f"line {n}")
    handler.close()
    assert secret.read_text() == "root's own\n"  # nothing went through the link
    said = [text for text in capfd.readouterr().err.splitlines() if "symbolic link" in text]
    assert len(said) == 1 and str(log) in said[0], said


def test_a_non_string_task_id_is_invalid_whatever_it_holds() -> None:
    celery = pytest.importorskip("trackline.celery", reason="the celery extra is not installed")
    from trackline.policy import DEFAULT_POLICY

    tracking_id, _trace, notes = celery.start_task({"tracking_id": 12345}, DEFAULT_POLICY)
    assert tracking_id != "12345" and DEFAULT_POLICY.pattern.fullmatch(tracking_id)
    [(level, message, extra)] = notes
    assert (level, message, extra["rejected_tracking_id"]) == (
        logging.WARNING, "replaced invalid tracking ID from the task message", "12345")


def test_check_config_names_a_symlinked_log_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from support.paths import CONF
    from trackline.config import ConfigError
    from trackline.logs import check_logging_config

    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").symlink_to(tmp_path / "elsewhere")
    monkeypatch.setenv("TRACKLINE_LOG_DIR", str(logs))
    with pytest.raises(ConfigError, match=r"app\.log is a symbolic link, which trackline does not write through"):
        check_logging_config(CONF / "logging.yaml", create_dirs=False)
