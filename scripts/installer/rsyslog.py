"""Log shipping (--ship-to) and the log host (--role loghost): every host's JSON lines to one log host over RELP
with TLS (docs/log-host.md), as rsyslog snippets checked with `rsyslogd -N1`; a rejected one is put back as it
was."""

from __future__ import annotations

import grp
import ipaddress
import os
import posixpath
import pwd
import re
import shutil
import socket
from collections.abc import Iterable
from pathlib import Path

from .files import Backup, has, make_dirs, put
from .job import Job
from .layout import (
    CENTRAL_DIR,
    CENTRAL_RULES,
    LIMITS_SNIPPET,
    LOGHOST_SNIPPET,
    LOGS_DIR,
    NGINX_ACCESS_LOG,
    RSYSLOG_D,
    SERVICE_USER,
    SHIP_SNIPPET,
    SHIP_STATE_DIR,
    SHIP_UNIT,
    SHIPPED_LOGS,
    SHIPPER_CONF,
    TLS_CA,
    TLS_CERT,
    TLS_DIR,
    TLS_KEY,
    UNIT_DIR,
    Host,
)
from .options import Address, Tls
from .system import Failure, apt_install, check_output, debian_packages_installed, run, say

PACKAGES = ("rsyslog", "rsyslog-relp")
#: The log host's imrelp maxDataSize, and trackline-limits.conf's maxMessageSize: 1 MiB and 2 KiB, the longest
#: frame it takes (whole; a longer one is refused). Any sender's frame fits: omrelp cuts a frame's data (the
#: syslog header and the line) to the sender's maxMessageSize, SENDER_LIMIT or, on an edge, this one.
MAX_FRAME = 1050624


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


def install_tls(job: Job, group: str = "") -> None:
    """The TLS files of the options into /etc/trackline/tls (0750): the CA and certificate 0644, the key 0600
    root, or 0640 root:``group`` (the shipper's, which runs as the service user)."""
    tls, host = job.options.tls, job.host
    if tls is None:
        return
    make_dirs(host.path(TLS_DIR).parent)
    host.path(TLS_DIR).mkdir(mode=0o750, exist_ok=True)
    key_mode = 0o640 if group else 0o600
    for source, dest, mode in ((tls.ca, TLS_CA, 0o644), (tls.cert, TLS_CERT, 0o644), (tls.key, TLS_KEY, key_mode)):
        put(host, dest, Path(source).read_bytes(), mode)
    if group and not host.staged:
        gid = grp.getgrnam(group).gr_gid
        for path in (TLS_DIR, TLS_KEY):
            os.chown(host.path(path), 0, gid)


def ship_inputs(paths: Iterable[str]) -> str:
    """imfile's inputs for trackline-ship.conf: one per file, each a fixed path (trackline-ship.conf says why)."""
    return "".join(
        f'input(type="imfile" file="{path}" tag="trackline" ruleset="trackline_ship" fileNotFoundError="off"\n'
        '      addMetadata="on" persistStateInterval="0" reopenOnTruncate="off" freshStartTail="off"\n'
        '      deleteStateOnFileDelete="on" discardTruncatedMsg="off" readMode="0" escapeLF="off")\n'
        for path in paths)


def ship_snippet(job: Job, paths: Iterable[str]) -> bytes:
    """rsyslog/trackline-ship.conf for the options' log host, reading ``paths``."""
    options = job.options
    assert options.ship_to is not None
    tls = relp_tls(installed(options.tls), options.tls_peer or options.ship_to.host)
    return render(job, SHIP_SNIPPET, SHIP_TO_HOST=options.ship_to.host, SHIP_TO_PORT=options.ship_to.port,
                  TLS=tls) + ship_inputs(paths).encode()


#: trackline-ship.service's message size limit, 1 MiB and 1 KiB: what rsyslog counts is the frame's data, the
#: syslog header (48 bytes and the host's and the file's names) and the line, so trackline's longest line (1 MiB
#: with its newline: max_line_bytes' default) goes whole with a header of up to 1025 bytes. Of a longer line
#: imfile keeps the first part, which arrives marked. Its frames stay 1 KiB within the log host's MAX_FRAME,
#: which refuses a longer frame: a sender with a bigger limit could send one and retry it forever.
SENDER_LIMIT = 'global(maxMessageSize="1049600")\n'


def shipper_config(job: Job) -> bytes:
    """/etc/trackline/rsyslog-ship.conf: the whole configuration of trackline-ship.service's rsyslogd."""
    head = (f"# Written by scripts/install --ship-to from rsyslog/trackline-ship.conf; run by {SHIP_UNIT}\n"
            f"# (docs/log-host.md). Check with `rsyslogd -N1 -f {SHIPPER_CONF}`.\n"
            f'global(workDirectory="{SHIP_STATE_DIR}")\n{SENDER_LIMIT}')
    return head.encode() + ship_snippet(job, [f"{LOGS_DIR}/{name}" for name in SHIPPED_LOGS])


def install_checked(job: Job, files: dict[str, bytes], whole: bool) -> list[str]:
    """``files`` (host path -> content) in place; if any changed, check them with rsyslogd -N1 and put the old
    files back if it rejects them. ``whole``: the one file is a configuration of its own (the shipper's);
    otherwise they are snippets of Debian's rsyslog.conf. A staging tree's files are checked on their own, with
    the staged TLS files. Returns the paths that changed."""
    host = job.host
    backup = Backup(host, job.tmp / "rsyslog-previous")
    changed = []
    for path, content in files.items():
        if not host.path(path).is_symlink() and has(host.path(path), content):
            continue
        backup.save(path)
        put(host, path, content)
        changed.append(path)
    if not changed:
        return []
    check = ["rsyslogd", "-N1"]
    if host.staged:
        if not shutil.which("rsyslogd"):
            say(f"no rsyslogd here: {' '.join(changed)} unchecked")
            return changed
        work = job.tmp / "rsyslog-work"
        work.mkdir(exist_ok=True)
        for path, content in files.items():  # with the staged TLS files and a work directory: -N1 opens them
            (work / posixpath.basename(path)).write_bytes(
                content.replace(f'"{TLS_DIR}/'.encode(), f'"{host.path(TLS_DIR)}/'.encode())
                .replace(f'"{SHIP_STATE_DIR}"'.encode(), f'"{work}"'.encode()))
        conf = job.tmp / "rsyslog.conf"
        included = "".join(f'include(file="{work / posixpath.basename(path)}")\n' for path in files)
        conf.write_text(f'global(workDirectory="{work}")\n{included}')
        check += ["-f", str(work / posixpath.basename(next(iter(files)))) if whole else str(conf)]
    elif whole:
        check += ["-f", next(iter(files))]
    valid, said = check_output(check)
    if not valid:
        backup.restore()
        said = "\n".join(line for line in said.splitlines() if "End of config validation run" not in line)
        raise Failure(f"rsyslogd -N1 rejects {' '.join(changed)} (left as before):\n{said}")
    return changed


def restart(host: Host, unit: str, changed: list[str], enable: bool = False) -> None:
    """Restart ``unit`` (enabled first if ``enable``) after ``changed``, when systemd runs this host."""
    names = " ".join(changed)
    if host.staged:
        say(f"--root: not restarting {unit}")
    elif host.systemd_running():
        run(["systemctl", "daemon-reload"])
        if enable:
            run(["systemctl", "enable", unit], quiet=True)
        run(["systemctl", "restart", unit])
        say(f"{unit} restarted with {names}")
    else:
        say(f"systemd is not running here: restart {unit} to apply {names}")


def install_shipping(job: Job) -> None:
    """--ship-to: this host's JSON logs go to the log host over RELP, with TLS unless --plain. On a web or worker
    host by trackline-ship.service (its own rsyslogd, as the service user); on an edge, nginx's log by Debian's
    rsyslog."""
    host = job.host
    ensure_rsyslog(host)
    if job.options.role == "edge":
        install_tls(job)
        files = {f"{RSYSLOG_D}/{LIMITS_SNIPPET}": render(job, LIMITS_SNIPPET),
                 f"{RSYSLOG_D}/{SHIP_SNIPPET}": ship_snippet(job, [NGINX_ACCESS_LOG])}
        changed = install_checked(job, files, whole=False)
        if changed:
            restart(host, "rsyslog", changed)
        return
    install_tls(job, group=SERVICE_USER)
    assert job.options.ship_to is not None
    check_reachable(job.options.ship_to.host)
    retire_rsyslog_shipping(host)
    if not host.staged:  # systemd makes it at the start (StateDirectory=); rsyslogd -N1 wants it now
        host.path(SHIP_STATE_DIR).mkdir(mode=0o700, exist_ok=True)
        user = pwd.getpwnam(SERVICE_USER)
        os.chown(host.path(SHIP_STATE_DIR), user.pw_uid, user.pw_gid)
    unit = put(host, f"{UNIT_DIR}/{SHIP_UNIT}", (job.repo / "systemd" / SHIP_UNIT).read_bytes())
    changed = install_checked(job, {SHIPPER_CONF: shipper_config(job)}, whole=True)
    if changed or unit:
        restart(host, SHIP_UNIT, changed or [f"{UNIT_DIR}/{SHIP_UNIT}"], enable=True)


#: The networks trackline-ship.service may reach (its IPAddressAllow=): loopback, link-local and private ones.
SHIPPER_NETWORKS = tuple(ipaddress.ip_network(net) for net in (
    "127.0.0.0/8", "::1/128", "169.254.0.0/16", "fe80::/10", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
    "fc00::/7"))


def check_reachable(host: str) -> None:
    """Say so when the log host ``host`` has an address outside SHIPPER_NETWORKS, which the shipper's unit
    cannot reach without a drop-in."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except OSError:
        say(f"{host} does not resolve here (yet): trackline-ship.service reaches private addresses only")
        return
    for address in sorted(addresses):
        if not any(ipaddress.ip_address(address.partition("%")[0]) in net for net in SHIPPER_NETWORKS):
            say(f"{host} is {address}, not on a private network: let {SHIP_UNIT} reach it with "
                f"`systemctl edit trackline-ship` ([Service] IPAddressAllow={address})")


def retire_rsyslog_shipping(host: Host) -> None:
    """An earlier install's /etc/rsyslog.d/trackline-ship.conf that had Debian's rsyslog (root) read this host's
    /var/log/trackline: removed, and rsyslog restarted without it (an edge's, which reads nginx's log, stays)."""
    path = f"{RSYSLOG_D}/{SHIP_SNIPPET}"
    if not host.path(path).is_file() or f"{LOGS_DIR}/".encode() not in host.path(path).read_bytes():
        return
    host.path(path).unlink()
    say(f"removed {path}: {SHIP_UNIT} ships {LOGS_DIR} now")
    if host.systemd_running():
        run(["systemctl", "restart", "rsyslog"])


def install_loghost(job: Job) -> None:
    """--role loghost: receive each --sender's lines into /var/log/trackline-central/<sender>/<file>, and rotate
    them."""
    options = job.options
    assert options.listen is not None  # options.parse_install: the default 127.0.0.1
    ensure_rsyslog(job.host)
    install_tls(job)
    listeners = loghost_listeners(options.listen.host, options.senders, installed(options.tls))
    changed = install_checked(job, {
        f"{RSYSLOG_D}/{LIMITS_SNIPPET}": render(job, LIMITS_SNIPPET),
        f"{RSYSLOG_D}/{LOGHOST_SNIPPET}": render(job, LOGHOST_SNIPPET, LISTEN_ADDRESS=options.listen.host,
                                                 CENTRAL_DIR=CENTRAL_DIR) + listeners.encode(),
    }, whole=False)
    if changed:
        restart(job.host, "rsyslog", changed)
    put(job.host, CENTRAL_RULES, (job.repo / "logrotate/trackline-central").read_bytes())
