"""WatchedAppendFileHandler under faults: a full disk tears no whole line, a removed directory comes back,
a rotated file is let go, and stderr hears of each failure once, not once per line."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from trackline.logs import JsonFormatter, WatchedAppendFileHandler
from trackline.logs.handlers import release_moved_files


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    directory = tmp_path / "logs"
    directory.mkdir()
    return directory / "app.log"


@pytest.fixture
def handler(log_path: Path) -> Iterator[WatchedAppendFileHandler]:
    handler = WatchedAppendFileHandler(str(log_path), coalesce=False)
    handler.setFormatter(JsonFormatter())
    yield handler
    handler.close()


def log(handler: WatchedAppendFileHandler, message: str) -> None:
    handler.handle(logging.makeLogRecord({"msg": message, "levelno": logging.INFO, "levelname": "INFO"}))


class FullDisk:
    """``os.write`` as on a filesystem with ``room`` bytes left: a short write, then ENOSPC, until ``free``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, room: int) -> None:
        self.room = room
        self.real_write = os.write
        monkeypatch.setattr(os, "write", self.write)

    def write(self, fd: int, data: bytes) -> int:
        if self.room is None:
            return self.real_write(fd, data)
        if self.room == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = self.real_write(fd, data[:self.room])
        self.room -= written
        return written

    def free(self) -> None:
        self.room = None


def stderr_records(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_a_write_cut_short_leaves_its_fragment_alone_on_its_line_and_stderr_hears_once(
        handler: WatchedAppendFileHandler, log_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    log(handler, "before")
    disk = FullDisk(monkeypatch, room=20)
    for number in range(50):
        log(handler, f"while full {number}")
    disk.free()
    log(handler, "after")
    log(handler, "again")

    lines = log_path.read_bytes().split(b"\n")
    assert lines[-1] == b""  # the file ends with a whole line
    assert [json.loads(line)["message"] for line in (lines[0], lines[2], lines[3])] == ["before", "after", "again"]
    assert lines[1] == lines[0][:20]  # the 20 bytes that fitted ('{"@timestamp":"2026-'), alone on their line
    err = capsys.readouterr().err
    assert "Traceback" not in err
    failing, resumed = stderr_records(err)  # one line when failing starts, one when it ends
    assert (failing["level"], failing["log_file"]) == ("ERROR", str(log_path))
    assert failing["error"] == "No space left on device"
    assert "dropping its lines" in failing["message"]
    assert (resumed["level"], resumed["dropped_lines"]) == ("WARNING", 50)
    assert str(log_path) in resumed["message"] and "50 lines were dropped" in resumed["message"]


def test_after_a_failed_write_that_wrote_nothing_a_whole_file_gets_no_blank_line(
        handler: WatchedAppendFileHandler, log_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    log(handler, "before")
    disk = FullDisk(monkeypatch, room=0)
    log(handler, "dropped")
    disk.free()
    log(handler, "after")
    assert [json.loads(line)["message"] for line in log_path.read_text().splitlines()] == ["before", "after"]
    assert [r["dropped_lines"] for r in stderr_records(capsys.readouterr().err) if "dropped_lines" in r] == [1]


def test_a_removed_log_directory_is_made_again_with_its_mode_by_the_next_line(tmp_path: Path) -> None:
    directory = tmp_path / "logs"
    directory.mkdir(mode=0o750)
    os.chmod(directory, 0o710)  # not a mode mkdir gives by default
    handler = WatchedAppendFileHandler(str(directory / "app.log"), coalesce=False)
    handler.setFormatter(JsonFormatter())
    try:
        log(handler, "before")
        shutil.rmtree(directory)  # rm -rf logs
        log(handler, "after")
    finally:
        handler.close()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o710
    assert [json.loads(line)["message"] for line in (directory / "app.log").read_text().splitlines()] == ["after"]


def open_paths() -> set[str]:
    fds = Path("/proc/self/fd")
    paths = set()
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):  # closed since listed
            paths.add(os.readlink(fd))
    return paths


def test_release_moved_files_lets_go_of_a_renamed_or_deleted_file_and_keeps_the_others(
        handler: WatchedAppendFileHandler, log_path: Path, tmp_path: Path) -> None:
    other = WatchedAppendFileHandler(str(tmp_path / "logs" / "error.log"))
    try:
        log(handler, "before")
        log_path.rename(log_path.with_name("app.log.1"))
        release_moved_files()
        assert str(log_path.with_name("app.log.1")) not in open_paths()
        assert str(tmp_path / "logs" / "error.log") in open_paths()  # not moved: stays open
        log(handler, "after")  # the path is opened anew
        log_path.unlink()
        release_moved_files()
        assert not any(path.startswith(str(log_path)) for path in open_paths())
    finally:
        other.close()
    assert json.loads(log_path.with_name("app.log.1").read_text())["message"] == "before"
