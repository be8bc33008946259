"""Shared fixtures: JSON log reading, the app with logging in tmp_path, and a real gunicorn on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient

from trackline.demo import create_app
from trackline.logs import configure_logging

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"
TRACKLINE = Path(sys.executable).with_name("trackline")

#: Fields every line of every log file carries (README, "Log format").
CONTRACT_FIELDS = {"@timestamp": str, "level": str, "logger": str, "tracking_id": (str, type(None)),
                   "message": str, "pid": int}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d")


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """Every complete line of ``path`` parsed as JSON; fails the test naming the first line that is not.

    Text after the last newline is a write still in progress (a reader can see part of a worker's
    ``os.write``), so it is left for the next read; ``assert_lines_complete`` checks files once writers end.
    """
    records = []
    if not path.exists():
        return records
    *lines, _in_progress = path.read_bytes().split(b"\n")
    for number, line in enumerate((line.decode("utf-8") for line in lines), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            pytest.fail(f"{path}:{number} is not JSON ({exc}): {line[:200]!r}")
    return records


def assert_lines_complete(log_dir: Path) -> None:
    """Every file in ``log_dir`` ends with a newline and is JSON lines: call once nothing writes there."""
    for path in sorted(log_dir.glob("*.log")):
        text = path.read_text(encoding="utf-8")
        assert not text or text.endswith("\n"), f"{path} ends in a partial line: {text[-200:]!r}"
        read_json_lines(path)


def assert_contract(record: dict[str, Any]) -> None:
    """``record`` has every contract field with the contract type and timestamp shape."""
    for name, kind in CONTRACT_FIELDS.items():
        assert name in record, f"missing {name!r} in {record}"
        assert isinstance(record[name], kind), f"{name!r} has type {type(record[name]).__name__} in {record}"
    assert TIMESTAMP.fullmatch(record["@timestamp"]), record["@timestamp"]


#: Request fields of every access line, with their types.
ACCESS_FIELDS: dict[str, Any] = {
    "remote_addr": str, "protocol": str, "host": str, "request_method": str, "request_path": str,
    "query_string": str, "status_code": int, "response_length": int, "referer": (str, type(None)),
    "user_agent": (str, type(None)), "request_time": float,
}


#: Request fields that are null in the access line of a request gunicorn answered without parsing it.
UNPARSED_FIELDS = frozenset({"protocol", "host", "request_method", "request_path", "query_string"})


def assert_access_line(record: dict[str, Any]) -> None:
    """An access line: contract fields plus every request field with its type (bool is not an int here)."""
    assert_contract(record)
    assert record["logger"] == "gunicorn.access"
    unparsed = record.get("request_method", "") is None and record.get("status_code", 0) >= 400
    for name, kind in ACCESS_FIELDS.items():
        assert name in record, f"missing {name!r} in {record}"
        if unparsed and name in UNPARSED_FIELDS:
            assert record[name] is None, f"{name!r} in {record}"
            continue
        assert isinstance(record[name], kind) and not isinstance(record[name], bool), f"{name!r} in {record}"
    assert record["request_time"] >= 0


def run_python(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with the test's Python in a process of its own (to patch, fork or exit freely)."""
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60, env=env)


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (another process may take it before the test does)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def raw_exchange(sock: socket.socket, request: bytes) -> RawResponse:
    """Send ``request`` bytes as they are and read one response (to its Content-Length, else to EOF)."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    assert status_line.startswith("HTTP/1.1 "), data[:200]
    headers = dict(line.split(": ", 1) for line in header_lines)
    length = int(headers.get("Content-Length", -1))
    while (length < 0 or len(body) < length) and (chunk := sock.recv(65536)):
        body += chunk
    return RawResponse(int(status_line.split()[1]), headers, body)


def raw_request(port: int, request: bytes, timeout: float = 10.0) -> RawResponse:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        return raw_exchange(sock, request)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Service:
    """A trackline process a test runs (a server, a worker): its conf dir copy and log dir under ``root``."""

    root: Path
    process: subprocess.Popen[bytes] | None

    @property
    def conf_dir(self) -> Path:
        return self.root / "conf"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self, timeout: float = 40.0) -> int:
        """TERM it (our own child, by PID) and wait for it; kill it if it hangs."""
        return stop_process(self.process, timeout)


@dataclass
class Server(Service):
    """A running ``trackline serve`` with its own conf dir copy, log dir and run dir under ``root``."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)  # more `trackline serve` arguments, e.g. ["--app", SPEC]
    probe: str = "/api/names"  # a path the served app answers with 200 (readiness)
    warm_up: str = "/api/users"  # a slow path that the warm-up's concurrent requests spread over the workers
    process: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def output(self) -> Path:
        """Where the master's stdout and stderr go."""
        return self.root / "server.out"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def command(self) -> list[str]:
        """What ``launch`` runs (a test's subclass may serve in a process of its own making)."""
        return [str(TRACKLINE), "serve", "--conf-dir", str(self.conf_dir), *self.args]

    def launch(self) -> Server:
        """Start ``trackline serve`` and return at once (``start`` also waits until every worker serves)."""
        env = {**os.environ, "TRACKLINE_LOG_DIR": str(self.log_dir), "TRACKLINE_RUN_DIR": str(self.root / "run"),
               "TRACKLINE_BIND": "127.0.0.1:0", **self.env}
        with self.output.open("ab") as output:  # a file, not a pipe: a full pipe would stall the workers
            self.process = subprocess.Popen(self.command, env=env, stdout=output, stderr=subprocess.STDOUT,
                                            cwd=self.root)
        return self

    def start(self, timeout: float = 20.0) -> Server:
        self.launch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                out = self.output.read_text(errors="replace")
                raise AssertionError(f"trackline serve exited with {self.process.returncode}: {out}")
            for record in self.logs("error.log"):
                match = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", record["message"])
                if match:
                    self.port = int(match.group(1))
            if self.port and self._answers():
                self.wait_for_workers()
                return self
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"trackline serve did not answer within {timeout}s")

    def _answers(self) -> bool:
        try:
            return self.get(self.probe).status == 200
        except OSError:
            return False

    @property
    def workers(self) -> int:
        """How many workers this server runs (TRACKLINE_WORKERS, else conf/gunicorn.yaml's default of 2)."""
        return int(self.env.get("TRACKLINE_WORKERS") or os.environ.get("TRACKLINE_WORKERS") or 2)

    def live_workers(self) -> set[int]:
        """Worker pids error.log says were booted and have not exited."""
        booted, exited = set(), set()
        for record in self.logs("error.log"):
            if match := re.fullmatch(r"Booting worker with pid: (\d+)", record["message"]):
                booted.add(int(match[1]))
            elif match := re.fullmatch(r"Worker exiting \(pid: (\d+)\)", record["message"]):
                exited.add(int(match[1]))
        return booted - exited

    def wait_for_workers(self) -> set[int]:
        """Send rounds of concurrent requests until every live worker has served one; their pids.

        Then every worker is past booting (a signal sent earlier is only held until then, see
        trackline/server/boot_signals.py) and the rounds' access lines are in access.log.
        """
        pids = wait_until(lambda: live if len(live := self.live_workers()) == self.workers else None,
                          f"{self.workers} live workers")

        def all_served() -> bool:
            ids = {f"warm-up-{uuid.uuid4()}" for _ in range(8)}
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda i: self.get(self.warm_up, {"X-Tracking-ID": i}), ids))
            # Wait for this round's own lines, so that none of them reaches the files later, into a test's view.
            wait_until(lambda: ids <= {r["tracking_id"] for r in self.logs("access.log")}, "warm-up access lines")
            return pids <= {r["pid"] for r in self.logs("access.log")}

        wait_until(all_served, f"workers {sorted(pids)} to serve a request")
        return pids

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



def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 40.0) -> int:
    """TERM ``process`` (a child the test started, by PID) and wait for it; kill it if it hangs; its status."""
    if process is None or process.poll() is not None:
        return process.returncode if process else 0
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Any]:
    """Factory: ``make_server(env={...}, name="a", args=[...])`` copies ./conf and returns an unstarted Server."""
    servers: list[Server] = []

    def make(env: dict[str, str] | None = None, name: str = "server", **options: Any) -> Server:
        server = Server(tmp_path / name, env=env or {}, **options)
        shutil.copytree(CONF, server.conf_dir)
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


LogReader = Callable[..., list[dict[str, Any]]]


class ServerLikeClient(FlaskClient):
    """A test client that reads and closes every response, as a WSGI server does."""

    def open(self, *args: Any, buffered: bool = True, **kwargs: Any) -> Any:
        return super().open(*args, buffered=buffered, **kwargs)


def client_for(app: Flask) -> FlaskClient:
    app.test_client_class = ServerLikeClient
    return app.test_client()


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


def edit_yaml(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``edit`` to the parsed YAML at ``path`` and write it back."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


@pytest.fixture
def app_log(logged: LogReader, logging_yaml: Path) -> Path:
    """Logging configured like ``logged``; the path of its app.log."""
    return logging_yaml.parent / "logs" / "app.log"

