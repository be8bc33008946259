"""scripts/install --ship-to and --role loghost: the shipper (trackline-ship.service and its rsyslogd
configuration), an edge's and the log host's rsyslog snippets, and the TLS files, staged with --root, checked,
idempotent."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from support.edge import require_nginx
from support.paths import INSTALL, REPO, UNINSTALL
from support.requirements import require_commands, require_venv_support
from support.staging import run_script, snapshot
from support.tls import Ca

LOGHOST = ["--role", "loghost", "--listen", "::1", "--sender", "web-1.example:10514", "--sender", "edge.example:10515"]


@pytest.fixture(scope="module")
def tls_args(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """--tls-ca/--tls-cert/--tls-key for web-1.example and logs.example, from one private CA."""
    ca = Ca(tmp_path_factory.mktemp("ca"))
    return {name: ["--tls-ca", files.ca, "--tls-cert", files.cert, "--tls-key", files.key]
            for name, files in ((name, ca.issue(name)) for name in ("web-1.example", "edge.example", "logs.example"))}


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory, tls_args: dict[str, list[str]]) -> Path:
    """An edge staged with ``--ship-to``: nginx's log shipped by Debian's rsyslog."""
    require_nginx()
    require_commands({"rsyslogd": "rsyslog"})
    root = tmp_path_factory.mktemp("edge")
    run_script(INSTALL, "--root", str(root), "--role", "edge", "--upstream", "127.0.0.1:8000", "--listen",
               "127.0.0.1:8080", "--ship-to", "logs.example:10515", *tls_args["edge.example"])
    return root


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory, tls_args: dict[str, list[str]]) -> Path:
    """A web host staged with ``--ship-to`` and its TLS files."""
    require_venv_support()
    require_commands({"rsyslogd": "rsyslog"})
    root = tmp_path_factory.mktemp("web")
    run_script(INSTALL, "--root", str(root), "--ship-to", "logs.example:10514", *tls_args["web-1.example"])
    return root


@pytest.fixture(scope="module")
def loghost(web: Path, tmp_path_factory: pytest.TempPathFactory, tls_args: dict[str, list[str]]) -> Path:
    """A log host staged with ``--role loghost --listen --sender``; its venv is copied from ``web`` to save a pip
    run."""
    root = tmp_path_factory.mktemp("loghost")
    subprocess.run(["cp", "-a", web / "opt", root / "opt"], check=True)
    run_script(INSTALL, "--root", str(root), *LOGHOST, *tls_args["logs.example"])
    return root


TLS = ('tls="on" tls.caCert="/etc/trackline/tls/ca.pem" tls.myCert="/etc/trackline/tls/cert.pem" '
       'tls.myPrivKey="/etc/trackline/tls/key.pem" tls.authMode="name" tls.permittedPeer=["logs.example"]')


def imfile_paths(config: str) -> list[str]:
    return re.findall(r'input\(type="imfile" file="([^"]*)"', config)


def test_ship_to_stages_the_shipper_with_the_log_host_and_fixed_files(web: Path) -> None:
    config = (web / "etc/trackline/rsyslog-ship.conf").read_text()
    shipped = (REPO / "rsyslog/trackline-ship.conf").read_text()
    assert shipped.replace("@SHIP_TO_HOST@", "logs.example").replace("@SHIP_TO_PORT@", "10514").replace(
        "@TLS@", TLS) in config
    assert 'global(workDirectory="/var/lib/trackline-ship")' in config and 'maxMessageSize="1049600"' in config
    assert imfile_paths(config) == [f"/var/log/trackline/{name}" for name in
                                    ("app.log", "access.log", "error.log", "worker.log")]
    assert (web / "etc/systemd/system/trackline-ship.service").read_bytes() == (
        REPO / "systemd/trackline-ship.service").read_bytes()
    assert not (web / "etc/rsyslog.d").exists()  # Debian's rsyslog (root) reads none of trackline's logs
    assert (web / "etc/systemd/system/trackline.service").exists()  # still a web host


def test_an_edge_ships_nginx_log_by_its_fixed_path_with_debians_rsyslog(edge: Path) -> None:
    snippet = (edge / "etc/rsyslog.d/trackline-ship.conf").read_text()
    assert imfile_paths(snippet) == ["/var/log/nginx/trackline-access.log"]
    assert 'target="logs.example" port="10515"' in snippet and TLS in snippet
    assert (edge / "etc/trackline/tls/key.pem").stat().st_mode & 0o777 == 0o600
    assert not (edge / "etc/systemd/system/trackline-ship.service").exists()


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze (Debian's systemd)")
def test_the_shipper_unit_is_exposed_at_most_1_1_as_documented(web: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    subprocess.run(["cp", "-a", web, root], check=True)
    shutil.copytree("/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True, dirs_exist_ok=True)
    security = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", f"--root={root}",
                               "trackline-ship.service"], capture_output=True, text=True, timeout=60)
    exposure = re.search(r"Overall exposure level for trackline-ship.service: (\d+\.\d+)", security.stdout)
    assert exposure, security.stdout + security.stderr
    assert float(exposure.group(1)) <= 1.1
    documented = re.search(r"trackline-ship.service.*?exposure level (\d+\.\d+)",
                           (REPO / "docs/log-host.md").read_text(), re.S)
    assert documented and float(documented.group(1)) == float(exposure.group(1)), "docs/log-host.md gives it"


@pytest.mark.parametrize("role", ["web", "loghost"])
def test_the_tls_files_are_copied_with_the_key_readable_by_root_and_the_shipper(role: str, web: Path, loghost: Path,
                                                                               tls_args: dict[str, list[str]]) -> None:
    staged = {"web": web, "loghost": loghost}[role]
    given = dict(zip(tls_args["web-1.example" if role == "web" else "logs.example"][::2],
                     tls_args["web-1.example" if role == "web" else "logs.example"][1::2], strict=True))
    tls = staged / "etc/trackline/tls"
    assert tls.stat().st_mode & 0o777 == 0o750
    for option, name, mode in (("--tls-ca", "ca.pem", 0o644), ("--tls-cert", "cert.pem", 0o644),
                               ("--tls-key", "key.pem", 0o640 if role == "web" else 0o600)):
        assert (tls / name).read_bytes() == Path(given[option]).read_bytes()
        assert (tls / name).stat().st_mode & 0o777 == mode, name


def test_loghost_stages_the_receiver_and_the_central_rotation_but_no_service(loghost: Path) -> None:
    snippet = (loghost / "etc/rsyslog.d/trackline-loghost.conf").read_text()
    assert 'name="web-1.example" address="::1" port="10514"' in snippet
    assert 'name="edge.example" address="::1" port="10515"' in snippet
    assert 'tls.authMode="name" tls.permittedPeer=["edge.example"]' in snippet
    assert 'constant(value="/var/log/trackline-central/")' in snippet
    assert (loghost / "etc/logrotate.d/trackline-central").read_bytes() == (
        REPO / "logrotate/trackline-central").read_bytes()
    assert (loghost / "usr/local/bin/trackline").exists()  # for trackline trace on the central tree
    assert not (loghost / "etc/systemd/system/trackline.service").exists()
    assert not (loghost / "etc/rsyslog.d/trackline-ship.conf").exists()


@pytest.mark.parametrize("role", ["web", "loghost"])
def test_second_install_changes_nothing(role: str, web: Path, loghost: Path, tmp_path: Path,
                                        tls_args: dict[str, list[str]]) -> None:
    staged, args = {"web": (web, ["--ship-to", "logs.example:10514", *tls_args["web-1.example"]]),
                    "loghost": (loghost, [*LOGHOST, *tls_args["logs.example"]])}[role]
    root = tmp_path / "root"
    subprocess.run(["cp", "-a", staged, root], check=True)
    before = snapshot(root)
    again = run_script(INSTALL, "--root", str(root), *args)
    assert snapshot(root) == before
    assert "installed" not in again.stdout


def test_a_snippet_rsyslogd_rejects_fails_the_install_with_its_message(web: Path, tmp_path: Path,
                                                                        tls_args: dict[str, list[str]]) -> None:
    root = tmp_path / "root"
    subprocess.run(["cp", "-a", web, root], check=True)
    checkout = tmp_path / "checkout"  # a checkout whose snippet has a typo, installed from
    shutil.copytree(REPO, checkout, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info"))
    snippet = checkout / "rsyslog/trackline-ship.conf"
    snippet.write_text(snippet.read_text().replace('windowSize="1024"', 'windowSize="1024" windowsize2="1"'))
    before = snapshot(root)
    done = subprocess.run([checkout / "scripts/install", "--root", root, "--ship-to", "logs.example:10514",
                           *tls_args["web-1.example"]],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "rsyslogd -N1 rejects /etc/trackline/rsyslog-ship.conf (left as before)" in done.stderr
    assert "windowsize2" in done.stderr
    assert snapshot(root) == before


def test_all_snippets_pass_rsyslogd_check_under_debians_own_main_config(edge: Path, loghost: Path,
                                                                          tmp_path: Path) -> None:
    """A host holding both (a log host that is an edge too) under /etc/rsyslog.conf as Debian ships it."""
    main = Path("/etc/rsyslog.conf")
    if not main.exists():
        pytest.skip("no /etc/rsyslog.conf (Debian's rsyslog installs it)")
    snippets = tmp_path / "rsyslog.d"
    snippets.mkdir()
    for staged in (edge, loghost):  # each with its own staged TLS files
        for snippet in (staged / "etc/rsyslog.d").iterdir():
            text = snippet.read_text().replace('"/etc/trackline/tls/', f'"{staged}/etc/trackline/tls/')
            (snippets / snippet.name).write_text(text)
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
    assert not (root / "etc/rsyslog.d").exists() or not list((root / "etc/rsyslog.d").iterdir())
    assert not (root / "etc/trackline/rsyslog-ship.conf").exists()
    assert not (root / "etc/systemd/system/trackline-ship.service").exists()
    assert not (root / "etc/logrotate.d/trackline-central").exists()
