"""scripts/install --root and scripts/uninstall --root: a staged install is complete, idempotent and keeps edits."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from support.paths import INSTALL, REPO, UNINSTALL
from support.requirements import require_venv_support
from support.staging import run_script, snapshot

CONF_FILES = sorted(p.name for p in (REPO / "conf").glob("*.yaml"))


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tree installed once with ``scripts/install --root`` from this checkout."""
    require_venv_support()
    root = tmp_path_factory.mktemp("staged")
    run_script(INSTALL, "--root", str(root))
    return root


def copy_tree(source: Path, dest: Path) -> Path:
    """``cp -a``: modes, owners and symlinks as they are."""
    subprocess.run(["cp", "-a", source, dest], check=True)
    return dest


def test_install_stages_venv_config_unit_and_rules(staged: Path, tmp_path: Path) -> None:
    assert sorted(p.name for p in (staged / "etc/trackline").iterdir()) == CONF_FILES
    for name in CONF_FILES:
        assert (staged / "etc/trackline" / name).read_bytes() == (REPO / "conf" / name).read_bytes()
    assert (staged / "etc/logrotate.d/trackline").read_bytes() == (REPO / "logrotate/trackline").read_bytes()
    assert "/opt/trackline/venv/bin/trackline serve" in (staged / "etc/systemd/system/trackline.service").read_text()
    venv = staged / "opt/trackline/venv"
    assert (venv / "bin/python").resolve() == Path("/usr/bin/python3").resolve()
    # The venv must work once moved to /opt/trackline: nothing under bin/ may name the staging directory.
    assert (venv / "bin/trackline").read_text().splitlines()[0] == "#!/opt/trackline/venv/bin/python"
    assert not [p for p in (venv / "bin").iterdir() if p.is_file() and str(staged).encode() in p.read_bytes()]
    command = staged / "usr/local/bin/trackline"  # runs the venv's trackline as the service would
    assert command.stat().st_mode & 0o777 == 0o755
    assert command.read_text().splitlines()[-1] == 'exec "/opt/trackline/venv/bin/trackline" "$@"'
    check = subprocess.run(
        [venv / "bin/python", "-m", "trackline.cli", "check-config", "--conf-dir", staged / "etc/trackline"],
        env={**os.environ, "TRACKLINE_LOG_DIR": str(tmp_path / "logs"), "TRACKLINE_RUN_DIR": str(tmp_path / "run")},
        capture_output=True, text=True, timeout=60,
    )
    assert check.returncode == 0, check.stderr
    assert "config OK" in check.stdout


def test_second_install_changes_nothing_and_edits_survive(staged: Path, tmp_path: Path) -> None:
    staged = copy_tree(staged, tmp_path / "root")
    before = snapshot(staged)
    again = run_script(INSTALL, "--root", str(staged))
    assert snapshot(staged) == before
    assert "installed" not in again.stdout

    edited = staged / "etc/trackline/logging.yaml"
    edited.write_text(edited.read_text().replace("level: ${TRACKLINE_LOG_LEVEL:-INFO}", "level: WARNING", 1))
    operator_version = edited.read_bytes()
    told = run_script(INSTALL, "--root", str(staged))
    assert edited.read_bytes() == operator_version
    assert (staged / "etc/trackline/logging.yaml.dist").read_bytes() == (REPO / "conf/logging.yaml").read_bytes()
    assert "kept your edited /etc/trackline/logging.yaml" in told.stdout
    with_dist = snapshot(staged)
    run_script(INSTALL, "--root", str(staged))
    assert snapshot(staged) == with_dist


def test_uninstall_keeps_config_and_logs_unless_purged(staged: Path, tmp_path: Path) -> None:
    root = copy_tree(staged, tmp_path / "root")
    (root / "var/log/trackline").mkdir(parents=True)
    run_script(UNINSTALL, "--root", str(root))
    for gone in ("etc/systemd/system/trackline.service", "etc/logrotate.d/trackline", "usr/local/bin/trackline",
                 "opt/trackline"):
        assert not (root / gone).exists(), gone
    assert (root / "etc/trackline/logging.yaml").exists() and (root / "var/log/trackline").is_dir()
    run_script(UNINSTALL, "--root", str(root), "--purge")
    assert not (root / "etc/trackline").exists() and not (root / "var/log/trackline").exists()


def test_a_hostile_prefix_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """--prefix goes into the units and /usr/local/bin/trackline, which root runs: a value that sh or systemd
    would read as more than a path is refused in one line, exit status 2, and nothing is written."""
    root, marker = tmp_path / "root", tmp_path / "ran"
    hostile = f'/opt/tl/venv/bin/true" ; touch {marker} ; "\nexec /bin/sh -c "touch {marker}'
    done = subprocess.run([str(INSTALL), "--root", str(root), "--prefix", hostile], capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == ("install: --prefix must be an absolute path of letters, digits and / . _ - + @, not "
                           f"{hostile!a}\n")
    assert not root.exists() and not marker.exists()


def test_a_trackline_command_that_is_not_ours_is_left_alone(staged: Path, tmp_path: Path) -> None:
    root = copy_tree(staged, tmp_path / "root")
    foreign = root / "usr/local/bin/trackline"
    foreign.write_text("#!/bin/sh\necho another trackline\n")
    told = run_script(INSTALL, "--root", str(root))
    assert "left /usr/local/bin/trackline alone: it is not trackline's" in told.stdout
    run_script(UNINSTALL, "--root", str(root))
    assert foreign.read_text() == "#!/bin/sh\necho another trackline\n"



@pytest.mark.slow
def test_install_with_a_team_app_serves_it_idempotently_and_picks_up_a_new_version(staged: Path,
                                                                                  tmp_path: Path) -> None:
    require_venv_support()
    package = copy_tree(REPO / "examples/acme-orders", tmp_path / "acme-orders")
    root = tmp_path / "root"
    args = ["--root", str(root), "--app", "acme_orders:create_app()", "--with", str(package)]
    run_script(INSTALL, *args)
    assert (root / "etc/trackline/gunicorn.yaml").read_text().endswith("wsgi_app: 'acme_orders:create_app()'\n")
    assert not (package / "build").exists() and not list(package.glob("*.egg-info"))  # the team's tree as it was
    before = snapshot(root)
    again = run_script(INSTALL, *args)
    assert snapshot(root) == before and "installed" not in again.stdout

    venv = root / "opt/trackline/venv"
    env = {**os.environ, "TRACKLINE_LOG_DIR": str(tmp_path / "logs"), "TRACKLINE_RUN_DIR": str(tmp_path / "run")}
    check = subprocess.run([venv / "bin/python", "-m", "trackline.cli", "check-config", "--conf-dir",
                            root / "etc/trackline"], env=env, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr
    assert "app:          acme_orders:create_app()" in check.stdout  # imported by the staged venv's python

    plain = copy_tree(staged, tmp_path / "plain")  # installed before without --app: its unedited file names it
    run_script(INSTALL, "--root", str(plain), "--app", "acme_orders:create_app()")
    assert (plain / "etc/trackline/gunicorn.yaml").read_bytes() == (root / "etc/trackline/gunicorn.yaml").read_bytes()

    pricing = package / "acme_orders/pricing.py"
    pricing.write_text(pricing.read_text().replace("9.99", "19.99"))
    upgraded = run_script(INSTALL, *args)
    assert "installed trackline and" in upgraded.stdout
    installed = venv / "lib" / next((venv / "lib").iterdir()).name / "site-packages/acme_orders/pricing.py"
    assert "19.99" in installed.read_text()
