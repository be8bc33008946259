"""TRACKLINE_LOG_TO=stdout: a real ``trackline serve`` writes every line (app, access, error) to stdout, a pipe
here as in a container or under systemd's StandardOutput=journal, with the JSON contract, and nothing to files."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.load import concurrently
from support.logs import assert_access_line, assert_contract
from support.paths import TRACKLINE
from support.server import Server, new_server
from support.waiting import wait_until

#: Where each of the files' lines goes in stdout mode, told apart by their logger.
FILES = {"access.log": lambda logger: logger == "gunicorn.access",
         "error.log": lambda logger: logger == "gunicorn.error",
         "app.log": lambda logger: not logger.startswith("gunicorn.")}


@dataclass
class StdoutServer(Server):
    """A Server whose stdout is a pipe that a thread drains; its ``logs(name)`` are the stdout lines that
    would have gone to that file."""

    stdout: bytearray = field(default_factory=bytearray)
    reader: threading.Thread | None = None

    def launch(self) -> Server:
        env = {**os.environ, "TRACKLINE_RUN_DIR": str(self.root / "run"), "TRACKLINE_BIND": "127.0.0.1:0",
               "TRACKLINE_LOG_TO": "stdout", **self.env}
        env.pop("TRACKLINE_LOG_DIR", None)
        with self.output.open("ab") as errors:
            self.process = subprocess.Popen([str(TRACKLINE), "serve", "--conf-dir", str(self.conf_dir)],
                                            env=env, stdout=subprocess.PIPE, stderr=errors, cwd=self.root)
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()
        return self

    def _drain(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while chunk := self.process.stdout.read1(65536):
            self.stdout.extend(chunk)

    def lines(self) -> list[dict[str, Any]]:
        """Every complete stdout line, each parsed as JSON (a line that is not fails the test)."""
        text = bytes(self.stdout).decode("utf-8")
        complete = text[:text.rfind("\n") + 1]
        records = []
        for number, line in enumerate(complete.splitlines(), 1):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise AssertionError(f"stdout line {number} is not JSON ({exc}): {line[:300]!r}") from None
        return records

    def logs(self, name: str) -> list[dict[str, Any]]:
        return [record for record in self.lines() if FILES[name](record["logger"])]


def test_every_line_goes_to_stdout_as_json_with_the_id_and_nothing_to_files(tmp_path: Path) -> None:
    server = new_server(tmp_path, kind=StdoutServer)
    assert isinstance(server, StdoutServer)
    try:
        server.start()
        workers = server.wait_for_workers()
        ids = [f"stdout-{n}" for n in range(200)]
        answers = concurrently(lambda i: server.get("/api/health", {"X-Tracking-ID": i}), ids, threads=16)
        assert [answer.status for answer in answers] == [200] * len(ids)
        failed = server.get("/api/error", headers={"X-Tracking-ID": "stdout-error"})
        assert failed.status == 500
        wait_until(lambda: set(ids) | {"stdout-error"} <= {r["tracking_id"] for r in server.logs("access.log")},
                   "every access line on stdout")
        wait_until(lambda: set(ids) <= {r["tracking_id"] for r in server.logs("app.log")}, "every app line")
    finally:
        assert server.stop() == 0
    assert server.reader is not None
    server.reader.join(10)
    assert bytes(server.stdout).endswith(b"\n")
    records = server.lines()
    for record in records:
        assert_contract(record)
    for record in server.logs("access.log"):
        assert_access_line(record)
    for tracking_id in ids:  # each request's lines carry its ID: the app's line and the access line
        mine = [r for r in records if r["tracking_id"] == tracking_id]
        assert sorted(r["logger"] for r in mine) == ["gunicorn.access", "trackline.api"], mine
        assert len({r["trace_id"] for r in mine}) == 1
    failure = [r for r in server.logs("app.log") if r["tracking_id"] == "stdout-error" and "exc_info" in r]
    assert failure and "This is a test exception" in failure[0]["exc_info"]
    # the master's and both workers' lines, on one stream
    pids = {r["pid"] for r in server.logs("error.log")}
    assert workers <= pids and server.process is not None and server.process.pid in pids
    assert {r["pid"] for r in server.logs("access.log")} >= workers
    assert any(r["message"].startswith("Listening at:") for r in server.logs("error.log"))
    assert any(r["message"] == "Shutting down: Master" for r in server.logs("error.log"))
    assert not (tmp_path / "logs").exists()  # nothing to files
    stderr = server.output.read_text()
    assert stderr.startswith("trackline: serving on 127.0.0.1:0, logging to stdout ("), stderr
