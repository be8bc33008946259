"""Shared fixtures: JSON log reading and a real gunicorn (gevent) trackline on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"
TRACKLINE = Path(sys.executable).with_name("trackline")

#: Fields every line of every log file carries (README, "Log format").
CONTRACT_FIELDS = {"@timestamp": str, "level": str, "logger": str, "tracking_id": (str, type(None)),
                   "message": str, "pid": int}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d")


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of ``path`` parsed as JSON; fails the test naming the first line that is not."""
    records = []
    if not path.exists():
        return records
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            pytest.fail(f"{path}:{number} is not JSON ({exc}): {line[:200]!r}")
    return records


def assert_contract(record: dict[str, Any]) -> None:
    """``record`` has every contract field with the contract type and timestamp shape."""
    for name, kind in CONTRACT_FIELDS.items():
        assert name in record, f"missing {name!r} in {record}"
        assert isinstance(record[name], kind), f"{name!r} has type {type(record[name]).__name__} in {record}"
    assert TIMESTAMP.fullmatch(record["@timestamp"]), record["@timestamp"]


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Server:
    """A running ``trackline serve`` with its own conf dir copy, log dir and run dir under ``root``."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def conf_dir(self) -> Path:
        return self.root / "conf"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> Server:
        env = {**os.environ, "TRACKLINE_LOG_DIR": str(self.log_dir), "TRACKLINE_RUN_DIR": str(self.root / "run"),
               "TRACKLINE_BIND": "127.0.0.1:0", **self.env}
        self.process = subprocess.Popen(
            [str(TRACKLINE), "serve", "--conf-dir", str(self.conf_dir)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=self.root,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                out = self.process.stdout.read().decode() if self.process.stdout else ""
                raise AssertionError(f"trackline serve exited with {self.process.returncode}: {out}")
            for record in self.logs("error.log"):
                match = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", record["message"])
                if match:
                    self.port = int(match.group(1))
            if self.port and self._answers():
                return self
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"trackline serve did not answer within {timeout}s")

    def _answers(self) -> bool:
        try:
            return self.get("/api/names").status == 200
        except OSError:
            return False

    def request(self, path: str, method: str = "GET", headers: dict[str, str] | None = None,
                timeout: float = 10.0) -> Response:
        req = urllib.request.Request(self.url + path, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return Response(resp.status, dict(resp.headers), resp.read())
        except urllib.error.HTTPError as err:
            return Response(err.code, dict(err.headers), err.read())

    def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        return self.request(path, headers=headers)

    def logs(self, name: str) -> list[dict[str, Any]]:
        return read_json_lines(self.log_dir / name)

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self, timeout: float = 40.0) -> int:
        """TERM the master (our own child, by PID) and wait for it; kill it if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Any]:
    """Factory: ``make_server(env={...}, name="a")`` copies ./conf and returns an unstarted Server."""
    servers: list[Server] = []

    def make(env: dict[str, str] | None = None, name: str = "server") -> Server:
        server = Server(tmp_path / name, env=env or {})
        shutil.copytree(CONF, server.conf_dir)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server: Any) -> Server:
    """A started trackline (2 gevent workers) on an ephemeral loopback port."""
    return make_server().start()
