"""Log shipping (--ship-to) and the log host (--role loghost): every host's JSON lines to one log host over RELP
with TLS (docs/log-host.md), as rsyslog snippets checked with `rsyslogd -N1`; a rejected one is put back as it
was."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from .files import Backup, make_dirs, put
from .job import Job
from .layout import (
    CENTRAL_DIR,
    CENTRAL_RULES,
    LIMITS_SNIPPET,
    LOGHOST_SNIPPET,
    LOGS_DIR,
    NGINX_ACCESS_LOG,
    RSYSLOG_D,
    SHIP_SNIPPET,
    TLS_CA,
    TLS_CERT,
    TLS_DIR,
    TLS_KEY,
    Host,
)
from .options import Address, Tls
from .system import Failure, apt_install, check_output, debian_packages_installed, run, say

PACKAGES = ("rsyslog", "rsyslog-relp")
MAX_FRAME = 1049600  # imrelp's maxDataSize: trackline-limits.conf's maxMessageSize, 1 MiB and 1 KiB


def ensure_rsyslog(host: Host) -> None:
    """Debian's rsyslog and rsyslog-relp on this host (a staging tree's target installs them itself)."""
    if host.staged or debian_packages_installed(*PACKAGES):
        return
    say("installing rsyslog and rsyslog-relp")
    apt_install(*PACKAGES)


def render(job: Job, snippet: str, **words: object) -> bytes:
    """rsyslog/SNIPPET with each @WORD@ replaced by its value; a word left over is a Failure."""
    return render_text((job.repo / "rsyslog" / snippet).read_text(), snippet, **words).encode()


def render_text(text: str, snippet: str, **words: object) -> str:
    """``text`` (rsyslog/SNIPPET) with each @WORD@ replaced by its value; a word left over is a Failure."""
    for word, value in words.items():
        text = text.replace(f"@{word}@", str(value))
    if re.search(r"@[A-Z_]*@", text):
        raise Failure(f"rsyslog/{snippet}: a word was left unreplaced")
    return text


def relp_tls(tls: Tls | None, peer: str) -> str:
    """imrelp's or omrelp's TLS parameters: this host's certificate and key, the CA, and the one certificate
    name the other end must show; ``tls="off"`` for --plain."""
    if tls is None:
        return 'tls="off"'
    return (f'tls="on" tls.caCert="{tls.ca}" tls.myCert="{tls.cert}" tls.myPrivKey="{tls.key}" '
            f'tls.authMode="name" tls.permittedPeer=["{peer}"]')


def loghost_listeners(address: str, senders: Iterable[Address], tls: Tls | None) -> str:
    """One imrelp listener per sender: on ``address`` and the sender's port, named after the sender (which names
    its directory), admitting with TLS only the certificate of that name."""
    return "".join(
        f'input(type="imrelp" name="{sender.host}" address="{address}" port="{sender.port}"\n'
        f'      ruleset="trackline_central" maxDataSize="{MAX_FRAME}" oversizeMode="abort"\n'
        f'      {relp_tls(tls, sender.host)})\n' for sender in senders)


def installed(tls: Tls | None) -> Tls | None:
    """Where scripts/install copies the TLS files to."""
    return None if tls is None else Tls(TLS_CA, TLS_CERT, TLS_KEY)


def install_tls(job: Job) -> None:
    """The TLS files of the options into /etc/trackline/tls (0750): the CA and certificate 0644, the key 0600."""
    tls = job.options.tls
    if tls is None:
        return
    make_dirs(job.host.path(TLS_DIR).parent)
    job.host.path(TLS_DIR).mkdir(mode=0o750, exist_ok=True)
    for source, dest, mode in ((tls.ca, TLS_CA, 0o644), (tls.cert, TLS_CERT, 0o644), (tls.key, TLS_KEY, 0o600)):
        put(job.host, dest, Path(source).read_bytes(), mode)


def install_snippets(job: Job, snippets: dict[str, bytes]) -> None:
    """The rendered snippets into /etc/rsyslog.d; if any changed, check them with rsyslogd -N1 (on this host the
    whole configuration; in a staging tree, the staged files in a configuration of their own), put the old
    files back if rsyslogd rejects them, and restart rsyslog once."""
    host = job.host
    backup = Backup(host, job.tmp / "rsyslog-previous")
    changed = []
    for name, content in snippets.items():
        path = f"{RSYSLOG_D}/{name}"
        dest = host.path(path)
        if dest.is_file() and dest.read_bytes() == content:
            continue
        backup.save(path)
        put(host, path, content)
        changed.append(name)
    if not changed:
        return
    names = " ".join(changed)
    check = ["rsyslogd", "-N1"]
    if host.staged:
        if not shutil.which("rsyslogd"):
            say(f"no rsyslogd here: {names} unchecked")
            return
        work, conf = job.tmp / "rsyslog-work", job.tmp / "rsyslog.conf"
        work.mkdir()
        for name, content in snippets.items():  # with the staged TLS files, which rsyslogd -N1 opens
            (work / name).write_bytes(content.replace(f'"{TLS_DIR}/'.encode(), f'"{host.path(TLS_DIR)}/'.encode()))
        included = "".join(f'include(file="{work / name}")\n' for name in snippets)
        conf.write_text(f'global(workDirectory="{work}")\n{included}')
        check += ["-f", str(conf)]
    valid, said = check_output(check)
    if not valid:
        backup.restore()
        said = "\n".join(line for line in said.splitlines() if "End of config validation run" not in line)
        raise Failure(f"rsyslogd -N1 rejects {names} in {RSYSLOG_D} (left as before):\n{said}")
    if host.staged:
        say("--root: not restarting rsyslog")
    elif host.systemd_running():
        run(["systemctl", "restart", "rsyslog"])
        say(f"rsyslog restarted with {names}")
    else:
        say(f"systemd is not running here: restart rsyslog to apply {names}")


def install_shipping(job: Job) -> None:
    """--ship-to: this host's JSON logs (and an edge's nginx log) go to the log host over RELP, with TLS unless
    --plain."""
    options = job.options
    assert options.ship_to is not None
    ensure_rsyslog(job.host)
    install_tls(job)
    install_snippets(job, {
        LIMITS_SNIPPET: render(job, LIMITS_SNIPPET),
        SHIP_SNIPPET: render(job, SHIP_SNIPPET, SHIP_TO_HOST=options.ship_to.host, SHIP_TO_PORT=options.ship_to.port,
                             TLS=relp_tls(installed(options.tls), options.tls_peer or options.ship_to.host),
                             LOG_DIR=LOGS_DIR, NGINX_ACCESS_LOG=NGINX_ACCESS_LOG),
    })


def install_loghost(job: Job) -> None:
    """--role loghost: receive each --sender's lines into /var/log/trackline-central/<sender>/<file>, and rotate
    them."""
    options = job.options
    assert options.listen is not None  # options.parse_install: the default 127.0.0.1
    ensure_rsyslog(job.host)
    install_tls(job)
    listeners = loghost_listeners(options.listen.host, options.senders, installed(options.tls))
    install_snippets(job, {
        LIMITS_SNIPPET: render(job, LIMITS_SNIPPET),
        LOGHOST_SNIPPET: render(job, LOGHOST_SNIPPET, LISTEN_ADDRESS=options.listen.host,
                                CENTRAL_DIR=CENTRAL_DIR) + listeners.encode(),
    })
    put(job.host, CENTRAL_RULES, (job.repo / "logrotate/trackline-central").read_bytes())
