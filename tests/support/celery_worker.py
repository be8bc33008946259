"""A real ``redis-server`` (Celery's broker) and a real ``trackline worker`` of celery_tasks' app, each started by
a test on loopback with its data and logs under the test's tmp dir, and stopped by its PID."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.logs import read_json_lines
from support.paths import CONF, REPO, TRACKLINE
from support.processes import free_port, stop_process
from support.server import Service
from support.waiting import wait_until

REDIS = shutil.which("redis-server")
TEST_TASKS = REPO / "tests" / "integration"  # where celery_tasks.py is


@dataclass
class Redis:
    """``redis-server`` on a fixed loopback port, data under ``root``; ``stop`` and ``start`` again keep the port."""

    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "redis.out").open("ab") as out:
            self.process = subprocess.Popen(
                [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(self.root)], stdout=out, stderr=subprocess.STDOUT)
        wait_until(self._pong, f"redis-server on port {self.port}")
        return self

    def command(self, command: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(command + b"\r\n")
            return sock.recv(64)

    def _pong(self) -> bool:
        try:
            return self.command(b"PING").startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        stop_process(self.process, 20)


@dataclass
class Worker(Service):
    """A running ``trackline worker`` with its own conf dir copy and log dir under ``root``."""

    root: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    def logs(self) -> list[dict[str, Any]]:
        return read_json_lines(self.log_dir / "worker.log")

    def start(self) -> Worker:
        with (self.root / "worker.out").open("ab") as out:
            self.process = subprocess.Popen([str(TRACKLINE), "worker", "--conf-dir", str(self.conf_dir)],
                                            env={**os.environ, **self.env}, stdout=out, stderr=subprocess.STDOUT)
        pid = self.process.pid
        wait_until(lambda: self.process.poll() is not None or any(
            r["pid"] == pid and r["message"].endswith(" ready.") for r in self.logs()),
            "the worker to consume", timeout=60)
        assert self.process.poll() is None, (self.root / "worker.out").read_text()
        return self

    def task_lines(self, task_id: str) -> list[dict[str, Any]]:
        return [r for r in self.logs() if r.get("task_id") == task_id]


def done(worker: Worker, task_id: str) -> bool:
    """Whether the worker's log says task ``task_id`` succeeded."""
    return any(r["message"].startswith("Task ") and "succeeded" in r["message"] for r in worker.task_lines(task_id))


def new_worker(root: Path, broker_url: str, concurrency: int = 2) -> Worker:
    """An unstarted worker of celery_tasks' app on ``broker_url``, logging to ``root``/logs, its conf dir a copy
    of ./conf made once (a worker made again on the same ``root`` keeps it)."""
    if not root.exists():
        shutil.copytree(CONF, root / "conf")
    env = {"TRACKLINE_LOG_DIR": str(root / "logs"), "TRACKLINE_BROKER_URL": broker_url,
           "TRACKLINE_CELERY_APP": "celery_tasks:app", "TRACKLINE_WORKER_CONCURRENCY": str(concurrency),
           "PYTHONPATH": os.pathsep.join([str(TEST_TASKS), os.environ.get("PYTHONPATH", "")])}
    return Worker(root, env)
