"""Log files under faults, on a real ``trackline serve``: a full disk tears no whole line and stderr hears of it
once per episode; a rotated file that is deleted or compressed frees its space even in processes that never
write it; a deleted log directory comes back.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.load import Load, concurrently
from support.processes import open_files
from support.requirements import unavailable
from support.server import Server, new_server
from support.waiting import wait_until

LOG_NAMES = ("app.log", "access.log", "error.log")
HANDLER_LOGGER = "trackline.logs.handlers"


def files_of(pids: set[int]) -> dict[int, set[str]]:
    """What each process has open."""
    return {pid: open_files(pid) for pid in pids}


def trackline_pids(server: Server) -> set[int]:
    """The master and its live workers."""
    assert server.process is not None
    return {server.process.pid, *server.live_workers()}


def health_checks(server: Server, prefix: str, count: int) -> set[str]:
    """``count`` GET /api/health (an app.log line and an access line each) with fresh IDs; the IDs."""
    ids = {f"{prefix}-{uuid.uuid4().hex[:12]}" for _ in range(count)}
    statuses = concurrently(lambda i: server.get("/api/health", {"X-Tracking-ID": i}).status, ids, threads=4)
    assert set(statuses) == {200}
    return ids


def logged_ids(server: Server, name: str) -> list[str]:
    return [r["tracking_id"] for r in server.logs(name)]


def test_deleting_or_compressing_a_rotated_file_frees_it_in_every_process_within_seconds(server: Server) -> None:
    pids = trackline_pids(server)
    assert len(pids) == 3
    for name in ("app.log", "access.log", "error.log"):
        assert all(str(server.log_dir / name) in files for files in files_of(pids).values()), name
    health_checks(server, "before", 10)
    for name in ("app.log", "access.log"):
        (server.log_dir / name).rename(server.log_dir / f"{name}.1")
    # gzip app.log.1 (as logrotate's compress does: a new file, the old one removed); rm access.log.1
    subprocess.run(["gzip", str(server.log_dir / "app.log.1")], check=True)
    (server.log_dir / "access.log.1").unlink()

    def released() -> bool:  # no request meanwhile: master and idle workers let go by themselves
        held = {pid: {f for f in files if ".log.1" in f} for pid, files in files_of(pids).items()}
        return not any(held.values())

    wait_until(released, "every trackline process to close the rotated files", timeout=10)
    after = health_checks(server, "after", 10)
    wait_until(lambda: after <= set(logged_ids(server, "access.log")), "the new access.log to get the new lines")
    assert after <= set(logged_ids(server, "app.log"))


def test_a_deleted_log_directory_is_made_again_with_its_mode_and_lines_resume(make_server: Any) -> None:
    server = make_server()
    server.log_dir.mkdir()
    os.chmod(server.log_dir, 0o750)  # as LogsDirectoryMode= could make it: not what mkdir gives
    server.start()
    health_checks(server, "before", 5)
    shutil.rmtree(server.log_dir)  # rm -rf logs
    after = health_checks(server, "after", 20)
    wait_until(lambda: after <= set(logged_ids(server, "access.log")), "access lines in a recreated directory")
    wait_until(lambda: after <= set(logged_ids(server, "app.log")), "app lines in a recreated directory")
    assert stat.S_IMODE(server.log_dir.stat().st_mode) == 0o750
    output = server.output.read_text(errors="replace")
    assert "Traceback" not in output and "Logging error" not in output, output[-2000:]


# --- a full disk ------------------------------------------------------------------------------------------

DISK_BYTES = 2 * 1024 * 1024


@pytest.fixture
def small_disk_server(tmp_path: Path) -> Iterator[Server]:
    """A Server (not started) whose log directory is a 2 MB tmpfs, unmounted after the server has stopped."""
    server = new_server(tmp_path / "server")
    server.log_dir.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES},mode=0755", "tmpfs",
                            str(server.log_dir)], capture_output=True, text=True)
    if mount.returncode != 0:
        unavailable(f"cannot mount a tmpfs on the log directory (needs root): {mount.stderr.strip()}")
    try:
        yield server
    finally:
        server.stop()
        subprocess.run(["umount", str(server.log_dir)], check=True)


def fill(directory: Path, leave: int) -> Path:
    """A file taking all of ``directory``'s filesystem but about ``leave`` bytes."""
    status = os.statvfs(directory)
    filler = directory / "filler"
    with filler.open("wb") as out:
        out.write(b"\0" * max(0, status.f_bavail * status.f_frsize - leave))
    return filler


def lines_and_fragments(path: Path) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The JSON lines of ``path`` and the lines that are not JSON (text after the last newline is left out)."""
    records, fragments = [], []
    for line in path.read_bytes().split(b"\n")[:-1]:
        try:
            records.append(json.loads(line))
        except ValueError:
            fragments.append(line)
    return records, fragments


def ids_in(server: Server, name: str) -> list[str]:
    """The tracking IDs of the JSON lines of one file, fragments skipped."""
    return [r["tracking_id"] for r in lines_and_fragments(server.log_dir / name)[0]]


def test_a_full_disk_tears_no_whole_line_and_says_so_once_per_episode(small_disk_server: Server) -> None:
    server = small_disk_server.start()
    filler = fill(server.log_dir, leave=6000)  # room for a few requests' lines, then a write cut short
    ids = (f"full-{uuid.uuid4().hex[:12]}" for _ in itertools.count())
    # Requests keep coming while the disk is full, each on a connection of its own, every one answered 200.
    with Load(server.port, ids, path="/api/health", keep_alive=False, expect=200, timeout=10) as load:
        wait_until(lambda: len(load.answers) >= 400 or load.errors, "400 requests answered while the disk is full",
                   timeout=60)
    while_full = {a.tracking_id for a in load.answers}
    filler.unlink()  # space is back
    after = health_checks(server, "after", 60)
    wait_until(lambda: after <= set(ids_in(server, "access.log")) and after <= set(ids_in(server, "app.log")),
               "every line logged after space came back")
    assert server.stop() == 0

    for name in LOG_NAMES:
        path = server.log_dir / name
        assert path.read_bytes().endswith(b"\n"), f"{path} ends mid-line"
        _records, fragments = lines_and_fragments(path)
        for fragment in fragments:  # a torn line's start, never two lines run together
            assert fragment.count(b'{"@timestamp"') <= 1 and b"}" not in fragment[-1:], (name, fragment[:300])
        assert len(fragments) <= 3, (name, fragments)  # at most one per writing process
    for name in ("access.log", "app.log"):
        ids = ids_in(server, name)
        assert all(ids.count(i) == 1 for i in after), f"{name}: a line logged after space came back is missing"
    assert len(while_full - set(ids_in(server, "access.log"))) > 100  # the disk really was full

    said = [json.loads(line) for line in server.output.read_text().splitlines()
            if line.startswith("{") and HANDLER_LOGGER in line]
    failing = [r for r in said if r["level"] == "ERROR"]
    resumed = [r for r in said if r["level"] == "WARNING"]
    assert failing and all(r["error"] == "No space left on device" for r in failing)
    assert len(failing) <= 3 * 3, failing  # once per file per process, not once per line
    assert {(r["pid"], r["log_file"]) for r in resumed} == {(r["pid"], r["log_file"]) for r in failing}
    assert sum(r["dropped_lines"] for r in resumed if r["log_file"].endswith("access.log")) >= 100
    assert "Logging error" not in server.output.read_text()


