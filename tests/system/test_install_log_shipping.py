"""scripts/install --ship-to and --role loghost: rsyslog snippets staged with --root, checked, idempotent."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from support.paths import INSTALL, REPO, UNINSTALL
from support.requirements import require_commands, require_venv_support
from support.staging import run_script, snapshot


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A web host staged with ``--ship-to``."""
    require_venv_support()
    require_commands({"rsyslogd": "rsyslog"})
    root = tmp_path_factory.mktemp("web")
    run_script(INSTALL, "--root", str(root), "--ship-to", "logs.example:10514")
    return root


@pytest.fixture(scope="module")
def loghost(web: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log host staged with ``--role loghost --listen``; its venv is copied from ``web`` to save a pip run."""
    root = tmp_path_factory.mktemp("loghost")
    subprocess.run(["cp", "-a", web / "opt", root / "opt"], check=True)
    run_script(INSTALL, "--root", str(root), "--role", "loghost", "--listen", "[::1]:10514")
    return root


def test_ship_to_stages_the_ship_snippet_with_the_log_host_and_the_log_dirs(web: Path) -> None:
    snippet = (web / "etc/rsyslog.d/trackline-ship.conf").read_text()
    shipped = (REPO / "rsyslog/trackline-ship.conf").read_text()
    assert snippet == (shipped.replace("@SHIP_TO_HOST@", "logs.example").replace("@SHIP_TO_PORT@", "10514")
                       .replace("@LOG_DIR@", "/var/log/trackline")
                       .replace("@NGINX_ACCESS_LOG@", "/var/log/nginx/trackline-access.log"))
    assert (web / "etc/systemd/system/trackline.service").exists()  # still a web host


def test_loghost_stages_the_receiver_and_the_central_rotation_but_no_service(loghost: Path) -> None:
    snippet = (loghost / "etc/rsyslog.d/trackline-loghost.conf").read_text()
    assert 'address="::1" port="10514"' in snippet
    assert 'constant(value="/var/log/trackline-central/")' in snippet
    assert (loghost / "etc/logrotate.d/trackline-central").read_bytes() == (
        REPO / "logrotate/trackline-central").read_bytes()
    assert (loghost / "usr/local/bin/trackline").exists()  # for trackline trace on the central tree
    assert not (loghost / "etc/systemd/system/trackline.service").exists()
    assert not (loghost / "etc/rsyslog.d/trackline-ship.conf").exists()


@pytest.mark.parametrize("role", ["web", "loghost"])
def test_second_install_changes_nothing(role: str, web: Path, loghost: Path, tmp_path: Path) -> None:
    staged, args = {"web": (web, ["--ship-to", "logs.example:10514"]),
                    "loghost": (loghost, ["--role", "loghost", "--listen", "[::1]:10514"])}[role]
    root = tmp_path / "root"
    subprocess.run(["cp", "-a", staged, root], check=True)
    before = snapshot(root)
    again = run_script(INSTALL, "--root", str(root), *args)
    assert snapshot(root) == before
    assert "installed" not in again.stdout


def test_a_snippet_rsyslogd_rejects_fails_the_install_with_its_message(web: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    subprocess.run(["cp", "-a", web, root], check=True)
    checkout = tmp_path / "checkout"  # a checkout whose snippet has a typo, installed from
    shutil.copytree(REPO, checkout, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info"))
    snippet = checkout / "rsyslog/trackline-ship.conf"
    snippet.write_text(snippet.read_text().replace('windowSize="1024"', 'windowSize="1024" windowsize2="1"'))
    before = snapshot(root)
    done = subprocess.run([checkout / "scripts/install", "--root", root, "--ship-to", "logs.example:10514"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "rsyslogd -N1 rejects trackline-ship.conf in /etc/rsyslog.d (left as before)" in done.stderr
    assert "windowsize2" in done.stderr
    assert snapshot(root) == before


def test_all_snippets_pass_rsyslogd_check_under_debians_own_main_config(web: Path, loghost: Path,
                                                                          tmp_path: Path) -> None:
    """A host holding both (a log host that ships too) under /etc/rsyslog.conf as Debian ships it."""
    main = Path("/etc/rsyslog.conf")
    if not main.exists():
        pytest.skip("no /etc/rsyslog.conf (Debian's rsyslog installs it)")
    snippets = tmp_path / "rsyslog.d"
    snippets.mkdir()
    for staged in (web, loghost):
        for snippet in (staged / "etc/rsyslog.d").iterdir():
            shutil.copy(snippet, snippets)
    assert sorted(p.name for p in snippets.iterdir()) == [
        "trackline-limits.conf", "trackline-loghost.conf", "trackline-ship.conf"]
    text = main.read_text()
    assert "$IncludeConfig /etc/rsyslog.d/*.conf" in text
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(text.replace("/etc/rsyslog.d/", f"{snippets}/").replace("/var/spool/rsyslog", str(tmp_path)))
    check = subprocess.run(["rsyslogd", "-N1", "-f", str(conf)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("role", ["web", "loghost"])
def test_uninstall_removes_the_snippets_and_rules(role: str, web: Path, loghost: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    subprocess.run(["cp", "-a", {"web": web, "loghost": loghost}[role], root], check=True)
    run_script(UNINSTALL, "--root", str(root))
    assert not list((root / "etc/rsyslog.d").iterdir())
    assert not (root / "etc/logrotate.d/trackline-central").exists()
