"""The installed units, trackline.service (``scripts/install``) and trackline-worker.service (``--role worker``,
with trackline[celery]): `systemd-analyze verify` accepts each, and `security --offline=yes` rates each at most
its limit, the number its doc gives (2.0 in docs/deploy.md, 1.5 in docs/celery.md)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from support.paths import INSTALL, REPO, UNINSTALL
from support.requirements import require_commands, require_venv_support
from support.staging import run_script


@dataclass(frozen=True)
class Unit:
    """A unit file scripts/install stages, with the install arguments that stage it."""

    name: str
    install_args: tuple[str, ...]
    max_exposure: float
    doc: str  # where the measured exposure level is given


WEB = Unit("trackline.service", (), 2.0, "docs/deploy.md")
WORKER = Unit("trackline-worker.service", ("--role", "worker"), 1.5, "docs/celery.md")
#: Both units make /var/log/trackline trackline:adm 2750 as root before they start (not LogsDirectory=).
LOGS_DIR_COMMAND = "+/usr/bin/install -d -o trackline -g adm -m 2750 /var/log/trackline"
EACH_UNIT = pytest.mark.parametrize("unit", [WEB, WORKER], ids=lambda unit: unit.name)


def installed_root(tmp_path_factory: pytest.TempPathFactory, *install_args: str) -> Path:
    """A ``scripts/install --root`` tree, plus this host's system units (sysinit.target & co.) and coreutils'
    install (which ExecStartPre= runs) for verify."""
    require_commands({"systemd-analyze": "systemd"})
    require_venv_support()
    root = tmp_path_factory.mktemp("root")
    run_script(INSTALL, *install_args, "--root", str(root))
    shutil.copytree("/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "usr/bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2("/usr/bin/install", root / "usr/bin")
    return root


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Unit], Path]:
    """``roots(unit)``: the tree installed with ``unit``'s install arguments (once for the module)."""
    installed: dict[Unit, Path] = {}

    def root(unit: Unit) -> Path:
        if unit not in installed:
            installed[unit] = installed_root(tmp_path_factory, *unit.install_args)
        return installed[unit]

    return root


@pytest.fixture
def root(roots: Callable[[Unit], Path]) -> Path:
    """The web role's tree (plain ``scripts/install --root``)."""
    return roots(WEB)


@pytest.fixture
def worker_root(roots: Callable[[Unit], Path]) -> Path:
    """A ``scripts/install --role worker --root`` tree."""
    return roots(WORKER)


def analyze(root: Path, *args: str, unit: str) -> subprocess.CompletedProcess[str]:
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


@EACH_UNIT
def test_verify_accepts_the_installed_unit(roots: Callable[[Unit], Path], unit: Unit) -> None:
    done = analyze(roots(unit), "verify", unit=unit.name)
    # verify also reports unknown keys and missing executables (ExecStart= must exist in the venv).
    assert done.returncode == 0 and not done.stdout + done.stderr, done.stdout + done.stderr


@EACH_UNIT
def test_security_exposure_is_within_the_limit_and_documented(roots: Callable[[Unit], Path], unit: Unit) -> None:
    exposure, documented = exposure_and_documented(roots(unit), unit.name, unit.doc)
    assert exposure <= unit.max_exposure
    assert documented == exposure, f"{unit.doc} must give the measured number"


def test_stop_outlasts_graceful_timeout_and_reload_checks_then_hups_the_master(root: Path) -> None:
    unit = unit_settings(root / "etc/systemd/system" / WEB.name)
    graceful = yaml.safe_load((REPO / "conf/gunicorn.yaml").read_text())["graceful_timeout"]
    assert int(unit["TimeoutStopSec"][0]) > graceful
    assert unit["Type"] == ["notify"] and unit["KillMode"] == ["mixed"] and unit["Restart"] == ["on-failure"]
    assert unit["ExecReload"] == ["/opt/trackline/venv/bin/trackline check-config", "/bin/kill -s HUP $MAINPID"]
    assert unit["ExecStartPre"] == [LOGS_DIR_COMMAND, "/opt/trackline/venv/bin/trackline check-config"]


def test_the_worker_role_installs_celery_and_its_unit_not_the_web_unit(worker_root: Path) -> None:
    assert (worker_root / "etc/systemd/system" / WORKER.name).is_file()
    assert not (worker_root / "etc/systemd/system/trackline.service").exists()
    assert (worker_root / "etc/trackline/worker.yaml").read_bytes() == (REPO / "conf/worker.yaml").read_bytes()
    assert list((worker_root / "opt/trackline/venv/lib").glob("python3*/site-packages/celery/__init__.py"))


def test_worker_unit_notifies_reloads_by_hup_and_stops_warm(worker_root: Path) -> None:
    unit = unit_settings(worker_root / "etc/systemd/system" / WORKER.name)
    assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["main"] and unit["KillMode"] == ["mixed"]
    assert unit["ExecStart"] == ["/opt/trackline/venv/bin/trackline worker"]
    assert unit["ExecReload"] == ["/opt/trackline/venv/bin/trackline check-config", "/bin/kill -s HUP $MAINPID"]
    assert unit["ExecStartPre"] == [LOGS_DIR_COMMAND, "/opt/trackline/venv/bin/trackline check-config"]
    assert int(unit["TimeoutStopSec"][0]) >= 60


@EACH_UNIT
def test_the_logs_directory_is_the_unit_s_not_systemd_s(roots: Callable[[Unit], Path], unit: Unit) -> None:
    """LogsDirectory= would give the directory and its files back to trackline:trackline on every start."""
    settings = unit_settings(roots(unit) / "etc/systemd/system" / unit.name)
    assert "LogsDirectory" not in settings and settings["ReadWritePaths"] == ["-/var/log/trackline"]
    assert settings["Environment"] == ["LOGS_DIRECTORY=/var/log/trackline"] and settings["UMask"] == ["0027"]
    assert settings["Group"] == ["trackline"]  # not adm: the service reads no log but its own


def test_uninstall_removes_the_worker_unit(worker_root: Path, tmp_path: Path) -> None:
    copy = tmp_path / "root"
    subprocess.run(["cp", "-a", worker_root, copy], check=True)
    run_script(UNINSTALL, "--root", str(copy))
    assert not (copy / "etc/systemd/system/trackline-worker.service").exists()
