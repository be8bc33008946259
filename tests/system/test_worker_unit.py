"""`scripts/install --role worker`: trackline[celery] and trackline-worker.service, which `systemd-analyze verify`
accepts and `security --offline=yes` rates at most 1.5 (the number docs/celery.md gives)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from test_systemd_unit import analyze, exposure_and_documented, installed_root, unit_settings

from support.paths import REPO, UNINSTALL
from support.staging import run_script

UNIT = "trackline-worker.service"
MAX_EXPOSURE = 1.5


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``scripts/install --role worker --root`` tree, plus this host's system units for verify."""
    return installed_root(tmp_path_factory, "--role", "worker")


def test_the_worker_role_installs_celery_and_its_unit_not_the_web_unit(root: Path) -> None:
    assert (root / "etc/systemd/system" / UNIT).is_file()
    assert not (root / "etc/systemd/system/trackline.service").exists()
    assert (root / "etc/trackline/worker.yaml").read_bytes() == (REPO / "conf/worker.yaml").read_bytes()
    assert list((root / "opt/trackline/venv/lib").glob("python3*/site-packages/celery/__init__.py"))


def test_verify_accepts_the_worker_unit(root: Path) -> None:
    done = analyze(root, "verify", unit=UNIT)
    assert done.returncode == 0 and not done.stdout + done.stderr, done.stdout + done.stderr


def test_worker_exposure_is_at_most_1_5_and_documented(root: Path) -> None:
    exposure, documented = exposure_and_documented(root, UNIT, "docs/celery.md")
    assert exposure <= MAX_EXPOSURE
    assert documented == exposure, "docs/celery.md must give the measured number"


def test_worker_unit_notifies_reloads_by_hup_and_stops_warm(root: Path) -> None:
    unit = unit_settings(root / "etc/systemd/system" / UNIT)
    assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["main"] and unit["KillMode"] == ["mixed"]
    assert unit["ExecStart"] == ["/opt/trackline/venv/bin/trackline worker"]
    assert unit["ExecReload"] == ["/opt/trackline/venv/bin/trackline check-config", "/bin/kill -s HUP $MAINPID"]
    assert unit["ExecStartPre"] == ["/opt/trackline/venv/bin/trackline check-config"]
    assert int(unit["TimeoutStopSec"][0]) >= 60


def test_uninstall_removes_the_worker_unit(root: Path, tmp_path: Path) -> None:
    copy = tmp_path / "root"
    subprocess.run(["cp", "-a", root, copy], check=True)
    run_script(UNINSTALL, "--root", str(copy))
    assert not (copy / "etc/systemd/system/trackline-worker.service").exists()
