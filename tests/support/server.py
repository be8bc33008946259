"""A real ``trackline serve`` (gunicorn with gevent workers) on an ephemeral 127.0.0.1 port, with its own copy of
./conf, log dir and run dir under the test's tmp dir."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support import http
from support.http import Response
from support.load import concurrently
from support.logs import read_json_lines
from support.paths import CONF, TRACKLINE
from support.processes import stop_process
from support.waiting import wait_until


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
        assert self.process is not None
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
            concurrently(lambda i: self.get(self.warm_up, {"X-Tracking-ID": i}), ids, threads=8)
            # Wait for this round's own lines, so that none of them reaches the files later, into a test's view.
            wait_until(lambda: ids <= {r["tracking_id"] for r in self.logs("access.log")}, "warm-up access lines")
            return pids <= {r["pid"] for r in self.logs("access.log")}

        wait_until(all_served, f"workers {sorted(pids)} to serve a request")
        return pids

    def request(self, path: str, method: str = "GET", headers: dict[str, str] | None = None,
                timeout: float = 10.0) -> Response:
        return http.request(self.url + path, method, headers, timeout)

    def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        return self.request(path, headers=headers)

    def logs(self, name: str) -> list[dict[str, Any]]:
        return read_json_lines(self.log_dir / name)


def new_server(root: Path, env: dict[str, str] | None = None, kind: type[Server] = Server, **options: Any) -> Server:
    """An unstarted ``kind`` of Server under ``root`` with its own copy of ./conf (``options``: Server's fields)."""
    server = kind(root, env=env or {}, **options)
    shutil.copytree(CONF, server.conf_dir)
    return server
