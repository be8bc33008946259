"""scripts/installer's compaction step (--role loghost): trackline-compact.service and .timer staged with the
--prefix, trackline[sql] in the venv, the timer enabled where systemd runs, everything removed by uninstall.
Against a --root staging tree in tmp_path with a fake python and rsyslogd, as test_installer_steps.py does."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from installer import compact, layout, roles, uninstall
from installer.job import Job
from installer.options import InstallOptions, parse_install, parse_uninstall
from support.fakes import FAKE_PYTHON
from support.paths import REPO
from support.requirements import require_commands

FAKE_RSYSLOGD = '#!/bin/sh\necho "$0 $*" >> "$FAKE_LOG"\n'
UNITS = ("trackline-compact.service", "trackline-compact.timer")


@pytest.fixture
def python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fake python3 (and rsyslogd, first on PATH); the calls go to tmp_path/calls.log."""
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    for name, script in (("python3", FAKE_PYTHON), ("rsyslogd", FAKE_RSYSLOGD)):
        (fake / name).write_text(script)
        (fake / name).chmod(0o755)
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.log"))
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    return str(fake / "python3")


def install_loghost(root: Path, python: str, *argv: str) -> None:
    roles.install(parse_install(["--role", "loghost", "--sender", "web-1:2514", "--plain", *argv, "--root",
                                 str(root)]), python=python)


def test_loghost_stages_the_service_and_the_timer_and_sql_in_the_venv(tmp_path: Path, python: str,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    install_loghost(root, python)
    for unit in UNITS:
        staged = root / "etc/systemd/system" / unit
        assert staged.read_bytes() == (REPO / "systemd" / unit).read_bytes()
        assert staged.stat().st_mode & 0o7777 == 0o644
    [pip] = [line for line in (tmp_path / "calls.log").read_text().splitlines() if " -m pip " in line]
    assert re.search(r"/source\[requests,sql\]( |$)", pip), pip
    out = capsys.readouterr().out
    assert "install: --root: not enabling trackline-compact.timer (on the target host: systemctl enable --now" \
           " trackline-compact.timer)\n" in out
    before = {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}
    mtimes = {path: path.stat().st_mtime_ns for path in before}
    install_loghost(root, python)
    assert {path: path.read_bytes() for path in root.rglob("*") if path.is_file()} == before
    assert {path: path.stat().st_mtime_ns for path in before} == mtimes


def test_the_service_runs_trackline_compact_on_the_central_tree_after_logrotate() -> None:
    service = (REPO / "systemd/trackline-compact.service").read_text()
    timer = (REPO / "systemd/trackline-compact.timer").read_text()
    [command] = re.findall(r"(?m)^ExecStart=(.*)$", service)
    assert command.split()[:4] == [f"{layout.DEFAULT_PREFIX}/venv/bin/trackline", "compact", "--log-dir",
                                   layout.CENTRAL_DIR]
    assert "--keep-json-days" in command and "--keep-parquet-days" in command
    assert re.search(r"(?m)^After=logrotate\.service$", service)
    assert re.search(r"(?m)^Type=oneshot$", service)
    assert re.search(rf"(?m)^ReadWritePaths={layout.CENTRAL_DIR}$", service)
    assert re.search(r"(?m)^Persistent=true$", timer) and re.search(r"(?m)^WantedBy=timers\.target$", timer)
    assert layout.COMPACT_UNIT in layout.UNITS and layout.TIMERS == (layout.COMPACT_TIMER,)


def test_prefix_moves_the_command_the_service_runs(tmp_path: Path, python: str) -> None:
    root = tmp_path / "root"
    install_loghost(root, python, "--prefix", "/srv/tl")
    service = (root / "etc/systemd/system/trackline-compact.service").read_text()
    assert "ExecStart=/srv/tl/venv/bin/trackline compact " in service and "/opt/trackline" not in service


def test_where_systemd_runs_the_timer_is_enabled_and_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """On a real host (no --root): the units written, systemd reloaded, the timer enabled --now; a second run
    with nothing changed only enables again (which changes nothing)."""
    calls: list[list[str]] = []
    written: list[str] = []
    monkeypatch.setattr(compact, "run", calls.append)
    monkeypatch.setattr(compact, "put", lambda host, path, content: written.append(path) or len(written) <= 2)
    monkeypatch.setattr(layout.Host, "systemd_running", lambda self: True)
    job = Job(InstallOptions(), tmp_path)
    compact.install_compaction(job)
    compact.install_compaction(job)
    assert written == [f"/etc/systemd/system/{unit}" for unit in UNITS] * 2
    enable = ["systemctl", "enable", "--quiet", "--now", "trackline-compact.timer"]
    assert calls == [["systemctl", "daemon-reload"], enable, enable]
    assert "install: trackline-compact.timer enabled: trackline compact runs daily after logrotate\n" in \
        capsys.readouterr().out


def test_uninstall_stops_the_timer_first_and_removes_both_units(tmp_path: Path, python: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    install_loghost(root, python)
    calls: list[list[str]] = []
    monkeypatch.setattr(layout.Host, "systemd_running", lambda self: True)
    monkeypatch.setattr(uninstall, "succeeds", lambda command: command[-1].startswith("trackline-compact"))
    monkeypatch.setattr(uninstall, "run", calls.append)
    uninstall.uninstall(parse_uninstall(["--root", str(root)]))
    assert calls[:2] == [["systemctl", "disable", "--now", "trackline-compact.timer"],
                         ["systemctl", "disable", "--now", "trackline-compact.service"]]
    assert not any((root / "etc/systemd/system" / unit).exists() for unit in UNITS)


def test_systemd_accepts_the_units_and_rates_the_service_safe(tmp_path: Path) -> None:
    """`systemd-analyze verify` (the command swapped for one that exists here) and the offline security rating."""
    require_commands({"systemd-analyze": "systemd"})
    for unit in UNITS:
        text = (REPO / "systemd" / unit).read_text()
        (tmp_path / unit).write_text(re.sub(r"(?m)^ExecStart=\S+", f"ExecStart={shutil.which('true')}", text))
    verify = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / unit) for unit in UNITS)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert verify.returncode == 0, verify.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(tmp_path / UNITS[0])],
                              capture_output=True, text=True, cwd=tmp_path)
    level = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security.stdout)
    assert level and float(level.group(1)) <= 1.0, security.stdout[-500:]
