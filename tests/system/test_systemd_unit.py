"""The installed unit: `systemd-analyze verify` accepts it and `security --offline=yes` rates it ≤ 2.0."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from support.paths import INSTALL, REPO
from support.requirements import require_commands, require_venv_support
from support.staging import run_script

UNIT = "trackline.service"
MAX_EXPOSURE = 2.0


def installed_root(tmp_path_factory: pytest.TempPathFactory, *install_args: str) -> Path:
    """A ``scripts/install --root`` tree, plus this host's system units (sysinit.target & co.) for verify."""
    require_commands({"systemd-analyze": "systemd"})
    require_venv_support()
    root = tmp_path_factory.mktemp("root")
    run_script(INSTALL, *install_args, "--root", str(root))
    shutil.copytree("/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    return root


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return installed_root(tmp_path_factory)


def analyze(root: Path, *args: str, unit: str = UNIT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", *args, f"--root={root}", unit],
                          capture_output=True, text=True, timeout=60)


def exposure_and_documented(root: Path, unit: str, doc: str) -> tuple[float, float | None]:
    """``unit``'s overall exposure by ``systemd-analyze security --offline=yes``, and the level ``doc`` gives."""
    done = analyze(root, "security", "--offline=yes", "--no-pager", unit=unit)
    match = re.search(rf"Overall exposure level for {unit}: (\d+\.\d+)", done.stdout)
    assert match, done.stdout + done.stderr
    documented = re.search(r"exposure level (\d+\.\d+)", (REPO / doc).read_text())
    return float(match.group(1)), float(documented.group(1)) if documented else None


def unit_settings(path: Path) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit file, every value of a repeated key in order."""
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_verify_accepts_the_installed_unit(root: Path) -> None:
    done = analyze(root, "verify")
    # verify also reports unknown keys and missing executables (ExecStart= must exist in the venv).
    assert done.returncode == 0 and not done.stdout + done.stderr, done.stdout + done.stderr


def test_security_exposure_is_at_most_2_and_documented(root: Path) -> None:
    exposure, documented = exposure_and_documented(root, UNIT, "docs/deploy.md")
    assert exposure <= MAX_EXPOSURE
    assert documented == exposure, "docs/deploy.md must give the measured number"


def test_stop_outlasts_graceful_timeout_and_reload_checks_then_hups_the_master(root: Path) -> None:
    unit = unit_settings(root / "etc/systemd/system" / UNIT)
    graceful = yaml.safe_load((REPO / "conf/gunicorn.yaml").read_text())["graceful_timeout"]
    assert int(unit["TimeoutStopSec"][0]) > graceful
    assert unit["Type"] == ["notify"] and unit["KillMode"] == ["mixed"] and unit["Restart"] == ["on-failure"]
    assert unit["ExecReload"] == ["/opt/trackline/venv/bin/trackline check-config", "/bin/kill -s HUP $MAINPID"]
    assert unit["ExecStartPre"] == ["/opt/trackline/venv/bin/trackline check-config"]
