"""Real systemd: install, start, serve, reload an edited logging.yaml, rotate, stop, in a throwaway sandbox.

systemd boots as PID 1 of new namespaces on an overlay of / (tests/support/sandbox.py), never on the real root.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.logs import assert_contract, read_json_lines
from support.sandbox import CARRIED, Sandbox
from support.staging import booted, build_wheelhouse, copy_repo, require_sandbox, sandbox_get
from support.waiting import wait_until

LOG_DIR = "/var/log/trackline"
LOGGING_YAML = "/etc/trackline/logging.yaml"
COMMAND = "/usr/local/bin/trackline"  # the venv's trackline with the service's directories
URL = "http://127.0.0.1:8000"  # gunicorn.yaml's default bind, free in the sandbox's own network namespace


@pytest.fixture
def carry(tmp_path: Path) -> Path:
    """What the sandbox gets copied in before it boots (it has no package index and its /tmp is emptied):
    the project's files (``repo/``) and wheels for ``scripts/install --wheelhouse`` (``wheelhouse/``)."""
    require_sandbox({"logrotate": "logrotate"})
    carry = tmp_path / "carry"
    copy_repo(carry / "repo")
    build_wheelhouse(carry / "wheelhouse", tmp_path / "wheel-build")
    return carry


@pytest.fixture
def sandbox(carry: Path, tmp_path: Path) -> Iterator[Sandbox]:
    """A booted systemd on an overlay of / (with ``carry`` in it); torn down by its PID 1's PID."""
    with booted(tmp_path, carry) as box:
        yield box


def curl(box: Sandbox, path: str, tracking_id: str) -> tuple[int, dict[str, str], str]:
    """GET ``path`` inside the sandbox; the status, the response headers (lower-case names) and the body."""
    return sandbox_get(box, URL + path, tracking_id)


def log_lines(box: Sandbox, name: str) -> list[dict[str, object]]:
    """Every complete line of /var/log/trackline/NAME (none if it is missing), read through PID 1's root.
    Just after a rotation the file is missing until the service writes its next line."""
    return read_json_lines(Path(f"/proc/{box.pid1}/root{LOG_DIR}/{name}"))


def journal(box: Sandbox) -> str:
    return box.run(["journalctl", "-u", "trackline", "-o", "cat"]).stdout


def unit_state(box: Sandbox) -> dict[str, str]:
    shown = box.run(["systemctl", "show", "trackline", "-p", "ActiveState,Result,NRestarts,MainPID,ExecMainStatus"])
    return dict(line.split("=", 1) for line in shown.stdout.splitlines())


@pytest.mark.slow
def test_install_start_reload_rotate_stop_under_systemd(sandbox: Sandbox) -> None:
    box = sandbox
    installed = box.run([str(CARRIED / "repo" / "scripts" / "install"), "--wheelhouse", str(CARRIED / "wheelhouse")],
                        timeout=300)
    assert "created system user 'trackline'" in installed.stdout

    box.run(["systemctl", "start", "trackline"], timeout=90)  # Type=notify: returns once gunicorn sent READY=1
    started = unit_state(box)
    assert started["ActiveState"] == "active", started
    assert box.run(["ps", "-o", "user=", "-p", started["MainPID"]]).stdout.strip() == "trackline"

    status, headers, _ = curl(box, "/api/health", "sandbox-before")
    assert status == 200 and headers["x-tracking-id"] == "sandbox-before"
    wait_until(lambda: any(r["tracking_id"] == "sandbox-before" for r in log_lines(box, "app.log")),
               "the INFO line of /api/health in app.log")
    traced = [json.loads(line) for line in box.run([COMMAND, "trace", "sandbox-before"]).stdout.splitlines()]
    assert {(r["logger"], r["tracking_id"]) for r in traced} >= {
        ("gunicorn.access", "sandbox-before"), ("trackline.api", "sandbox-before")}, traced

    # A broken edit: the reload's check-config refuses it, and the service goes on as it was.
    text = box.run(["cat", LOGGING_YAML]).stdout
    box.run(["tee", LOGGING_YAML], input=text.replace("version: 1", "version: 2"))
    refused = box.run(["systemctl", "reload", "trackline"], check=False, timeout=60)
    assert refused.returncode != 0
    wait_until(lambda: "'version: 1' is required" in journal(box), "check-config's reason in the journal")
    assert unit_state(box)["MainPID"] == started["MainPID"] and curl(box, "/api/names", "sandbox-refused")[0] == 200

    # The operator turns the app's loggers down to WARNING and reloads: check-config, then HUP to the master.
    edited, count = re.subn(r"(?m)^(root:.*\n\s+level: ).*$", r"\g<1>WARNING", text)
    assert count == 1
    box.run(["tee", LOGGING_YAML], input=edited)
    checked = box.run(["runuser", "-u", "trackline", "--", COMMAND, "check-config"])  # as docs/deploy.md says
    assert "config OK: /etc/trackline" in checked.stdout and f"{LOG_DIR}/access.log" in checked.stdout
    box.run(["systemctl", "reload", "trackline"], timeout=60)
    assert unit_state(box)["MainPID"] == started["MainPID"]  # reloaded, not restarted

    def info_line_gone() -> bool:  # the old workers finish gracefully, then only new ones answer
        tracking_id = f"sandbox-after-{time.monotonic_ns()}"
        assert curl(box, "/api/health", tracking_id)[0] == 200
        wait_until(lambda: any(r["tracking_id"] == tracking_id for r in log_lines(box, "access.log")), "access line")
        return not any(r["tracking_id"] == tracking_id for r in log_lines(box, "app.log"))

    wait_until(info_line_gone, "the reloaded WARNING level to drop /api/health's INFO line")

    # Warnings and worse also go to stderr, which is the journal.
    assert curl(box, "/api/error", "sandbox-error")[0] == 500
    wait_until(lambda: "sandbox-error" in journal(box), "the error in the journal")

    # The installed rules, as the daily timer runs them: renamed as the service user (nocreate), and the
    # service recreates a file with its next line (app.log, now at WARNING, stays absent until it has one).
    box.run(["logrotate", "--force", "/etc/logrotate.d/trackline"])
    assert curl(box, "/api/health", "sandbox-rotated")[0] == 200
    wait_until(lambda: any(r["tracking_id"] == "sandbox-rotated" for r in log_lines(box, "access.log")),
               "the first line after rotation")

    box.run(["systemctl", "stop", "trackline"], timeout=90)
    stopped = unit_state(box)
    assert (stopped["ActiveState"], stopped["Result"], stopped["NRestarts"]) == ("inactive", "success", "0"), stopped

    files = box.run(["ls", LOG_DIR]).stdout.split()
    assert {"access.log", "error.log"} <= set(files), files
    for name in ("app", "access", "error"):
        assert any(re.fullmatch(rf"{name}\.log-\d{{8}}-\d+", file) for file in files), files
    # Debian's adm group reads the logs (the setgid directory gives each new one the group), nobody else does.
    owners = box.run(["stat", "-c", "%U:%G %a %n", LOG_DIR, *(f"{LOG_DIR}/{n}" for n in files)]).stdout
    assert {tuple(line.split()[:2]) for line in owners.splitlines()} == {
        ("trackline:adm", "2750"), ("trackline:adm", "640")}, owners
    as_adm = ["setpriv", "--reuid=nobody", "--regid=adm", "--clear-groups", "cat", f"{LOG_DIR}/access.log"]
    assert "sandbox-rotated" in box.run(as_adm).stdout
    as_other = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "cat", f"{LOG_DIR}/access.log"]
    assert box.run(as_other, check=False).returncode != 0
    for name in files:
        for record in log_lines(box, name):
            assert_contract(record)
