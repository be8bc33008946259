"""Real systemd: the shipper (trackline-ship.service) reads only what the service user may.

scripts/install --ship-to in a throwaway systemd (tests/support/sandbox.py, never the real root), with a log host
(an rsyslogd of the shipped trackline-loghost.conf, as a transient unit) in the same sandbox, over TLS. The
service user plants links in its log directory to a root-only file: the app's lines reach the log host, the
file's content never does.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from installer.options import Address, Tls
from installer.rsyslog import loghost_listeners, render_text
from support.paths import REPO
from support.sandbox import CARRIED, Sandbox
from support.staging import booted, build_wheelhouse, copy_repo, require_sandbox, sandbox_get
from support.tls import Ca
from support.waiting import wait_until

pytestmark = pytest.mark.slow
PORT = 2514  # the log host's port for web-1, in the sandbox's own network namespace
CENTRAL = "/srv/central"
SECRET = "/srv/root-only-secret"
MARKER = "ROOT-ONLY-MARKER-8d3f"


def carried_tls(tls: Tls) -> Tls:
    """``tls``'s files as the sandbox sees them (copied to /srv/carry/tls)."""
    return Tls(*(f"{CARRIED}/tls/{Path(path).name}" for path in tls))


@pytest.fixture
def carry(tmp_path: Path) -> Path:
    """The project, wheels for --wheelhouse, certificates of one CA (web-1's, the log host's) and the log host's
    configuration: the shipped snippets with a listener for web-1 on PORT."""
    require_sandbox({"rsyslogd": "rsyslog"})
    carry = tmp_path / "carry"
    copy_repo(carry / "repo")
    build_wheelhouse(carry / "wheelhouse", tmp_path / "wheel-build")
    ca = Ca(carry / "tls")
    ca.issue("web-1")
    loghost = carried_tls(ca.issue("loghost"))
    text = "".join([
        'global(workDirectory="/srv/loghost-work")\n',
        (REPO / "rsyslog/trackline-limits.conf").read_text(),
        render_text((REPO / "rsyslog/trackline-loghost.conf").read_text(), "trackline-loghost.conf",
                    LISTEN_ADDRESS="127.0.0.1", CENTRAL_DIR=CENTRAL),
        loghost_listeners("127.0.0.1", [Address(f"web-1:{PORT}", "web-1", PORT)], loghost)])
    (carry / "loghost.conf").write_text(text)
    return carry


@pytest.fixture
def sandbox(carry: Path, tmp_path: Path) -> Iterator[Sandbox]:
    with booted(tmp_path, carry) as box:
        yield box


def central_text(box: Sandbox) -> str:
    """Everything the log host has written, read through the sandbox's PID 1."""
    tree = Path(f"/proc/{box.pid1}/root{CENTRAL}")
    return "".join(path.read_text(errors="replace") for path in tree.rglob("*") if path.is_file())


def journals(box: Sandbox) -> str:
    """The shipper's and the log host's journals, the last lines of each."""
    return "\n".join(box.run(["journalctl", "-u", unit, "-o", "cat", "-n", "30"], check=False).stdout
                     for unit in ("trackline-ship", "test-loghost"))


def test_a_link_the_service_user_plants_never_ships_a_file_it_cannot_read(sandbox: Sandbox) -> None:
    box = sandbox
    box.run(["mkdir", "-p", "/srv/loghost-work"])
    box.run(["systemd-run", "--unit=test-loghost", "/usr/sbin/rsyslogd", "-n", "-iNONE", "-f",
             f"{CARRIED}/loghost.conf"])
    web_1 = [arg for option, name in (("--tls-ca", "ca.pem"), ("--tls-cert", "web-1.pem"),
                                      ("--tls-key", "web-1-key.pem")) for arg in (option, f"{CARRIED}/tls/{name}")]
    installed = box.run([f"{CARRIED}/repo/scripts/install", "--wheelhouse", f"{CARRIED}/wheelhouse",
                         "--ship-to", f"127.0.0.1:{PORT}", "--tls-peer", "loghost", *web_1], timeout=300)
    assert "trackline-ship.service restarted" in installed.stdout, installed.stdout
    assert box.run(["test", "-e", "/etc/rsyslog.d/trackline-ship.conf"], check=False).returncode != 0

    # The shipper: its own rsyslogd, as the service user, in no adm group, hardened.
    shown = dict(line.split("=", 1) for line in box.run(
        ["systemctl", "show", "trackline-ship", "-p", "ActiveState,MainPID"]).stdout.splitlines())
    assert shown["ActiveState"] == "active", shown
    assert box.run(["ps", "-o", "user:20=,comm=", "-p", shown["MainPID"]]).stdout.split() == ["trackline", "rsyslogd"]
    assert "adm" not in box.run(["id", "-Gn", "trackline"]).stdout.split()
    security = box.run(["systemd-analyze", "security", "--no-pager", "trackline-ship.service"], check=False).stdout
    exposure = re.search(r"Overall exposure level for trackline-ship.service: (\d+\.\d+)", security)
    assert exposure and float(exposure.group(1)) <= 1.1, security[-500:]
    assert oct(Path(f"/proc/{box.pid1}/root/etc/trackline/tls/key.pem").stat().st_mode & 0o777) == "0o640"

    box.run(["systemctl", "start", "trackline"], timeout=90)
    # A root-only file, and the service user's links to it: a name the shipper never reads and one it does.
    box.run(["sh", "-c", f"umask 077 && echo {MARKER} > {SECRET}"])
    for link in ("innocent.log", "worker.log"):
        box.run(["runuser", "-u", "trackline", "--", "ln", "-s", SECRET, f"/var/log/trackline/{link}"])
    assert box.run(["runuser", "-u", "trackline", "--", "cat", SECRET], check=False).returncode != 0

    # The app's lines written after the links arrive, two poll rounds apart: the shipper has been past the links.
    for tracking_id in ("sandbox-ship-1", "sandbox-ship-2"):
        assert sandbox_get(box, "http://127.0.0.1:8000/api/health", tracking_id)[0] == 200
        try:
            wait_until(functools.partial(lambda seen: seen in central_text(box), tracking_id),
                       f"{tracking_id} at the log host", timeout=60)
        except pytest.fail.Exception:
            pytest.fail(f"{tracking_id} never reached the log host:\n{journals(box)}")
    assert MARKER not in central_text(box)
    stored = {p.name for p in Path(f"/proc/{box.pid1}/root{CENTRAL}/web-1").iterdir()}
    assert {"access.log", "app.log"} <= stored and not stored & {"worker.log", "innocent.log", "dropped.log"}
