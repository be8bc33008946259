"""Real systemd, both roles on one host: trackline and trackline-worker started, one job queued through them
on a redis-server in the sandbox, the worker reloaded and stopped (tests/support/sandbox.py: never the real /)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.logs import assert_contract, read_json_lines
from support.sandbox import CARRIED, Sandbox
from support.staging import booted, build_wheelhouse, copy_repo, require_sandbox
from support.waiting import wait_until

LOG_DIR = "/var/log/trackline"
COMMAND = "/usr/local/bin/trackline"
URL = "http://127.0.0.1:8000"
BROKER = "redis://127.0.0.1:6379/0"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    require_sandbox({"redis-server": "redis-server"})
    carry = tmp_path / "carry"
    copy_repo(carry / "repo")
    build_wheelhouse(carry / "wheelhouse", tmp_path / "wheel-build", extras="[requests,celery]")
    with booted(tmp_path, carry) as box:
        yield box


def worker_lines(box: Sandbox) -> list[dict[str, object]]:
    return read_json_lines(Path(f"/proc/{box.pid1}/root{LOG_DIR}/worker.log"))


def main_pid(box: Sandbox, unit: str) -> str:
    return box.run(["systemctl", "show", unit, "-p", "MainPID", "--value"]).stdout.strip()


@pytest.mark.slow
def test_a_job_queued_through_both_units_carries_the_requests_id(sandbox: Sandbox) -> None:
    box = sandbox
    for role in ("web", "worker"):
        box.run([str(CARRIED / "repo/scripts/install"), "--role", role, "--wheelhouse", str(CARRIED / "wheelhouse")],
                timeout=300)
    # The broker: Debian's redis-server on the sandbox's own loopback (its network namespace), no data on disk.
    box.run(["redis-server", "--port", "6379", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", "/tmp", "--daemonize", "yes"])
    box.run(["sh", "-c", f"echo 'JOBS_BROKER_URL: {BROKER}' >> /etc/trackline/app.yaml"])

    box.run(["systemctl", "start", "trackline"], timeout=90)
    box.run(["systemctl", "start", "trackline-worker"], timeout=90)  # Type=notify: returns once it consumes
    worker_pid = main_pid(box, "trackline-worker")
    assert box.run(["ps", "-o", "user=", "-p", worker_pid]).stdout.strip() == "trackline"
    assert any(str(r["message"]).endswith(" ready.") for r in worker_lines(box))

    answer = box.run(["curl", "-sS", "--max-time", "10", "-X", "POST", "-H", "X-Tracking-ID: sandbox-job",
                      f"{URL}/api/jobs"]).stdout
    job = json.loads(answer)["data"]["job_id"]
    wait_until(lambda: any(r.get("task_id") == job and r["message"] == "job done" for r in worker_lines(box)),
               "the job done in worker.log", timeout=60)
    assert {r["tracking_id"] for r in worker_lines(box) if r.get("task_id") == job} == {"sandbox-job"}
    traced = [json.loads(line) for line in box.run([COMMAND, "trace", "sandbox-job"]).stdout.splitlines()]
    assert {"gunicorn.access", "trackline.jobs"} <= {r["logger"] for r in traced}
    assert any(r.get("task_id") == job for r in traced)

    box.run(["systemctl", "reload", "trackline-worker"], timeout=60)
    wait_until(lambda: any(r["message"] == "logging.yaml re-applied" for r in worker_lines(box)), "the reload",
               timeout=60)
    assert main_pid(box, "trackline-worker") == worker_pid  # reloaded, not restarted

    box.run(["systemctl", "stop", "trackline-worker", "trackline"], timeout=120)
    shown = box.run(["systemctl", "show", "trackline-worker", "-p", "ActiveState,Result", "--value"]).stdout.split()
    assert sorted(shown) == ["inactive", "success"], shown
    for record in worker_lines(box):
        assert_contract(record)
