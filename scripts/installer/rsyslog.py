"""Log shipping (--ship-to) and the log host (--role loghost): every host's JSON lines to one log host over RELP
(docs/log-host.md), as rsyslog snippets checked with `rsyslogd -N1`; a rejected one is put back as it was."""

from __future__ import annotations

import re
import shutil

from .files import Backup, put
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
    Host,
)
from .system import Failure, apt_install, check_output, debian_packages_installed, run, say

PACKAGES = ("rsyslog", "rsyslog-relp")


def ensure_rsyslog(host: Host) -> None:
    """Debian's rsyslog and rsyslog-relp on this host (a staging tree's target installs them itself)."""
    if host.staged or debian_packages_installed(*PACKAGES):
        return
    say("installing rsyslog and rsyslog-relp")
    apt_install(*PACKAGES)


def render(job: Job, snippet: str, **words: object) -> bytes:
    """rsyslog/SNIPPET with each @WORD@ replaced by its value; a word left over is a Failure."""
    text = (job.repo / "rsyslog" / snippet).read_text()
    for word, value in words.items():
        text = text.replace(f"@{word}@", str(value))
    if re.search(r"@[A-Z_]*@", text):
        raise Failure(f"rsyslog/{snippet}: a word was left unreplaced")
    return text.encode()


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
        included = "".join(f'include(file="{host.path(f"{RSYSLOG_D}/{name}")}")\n' for name in snippets)
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
    """--ship-to: this host's JSON logs (and an edge's nginx log) go to the log host over RELP."""
    ship_to = job.options.ship_to
    assert ship_to is not None
    ensure_rsyslog(job.host)
    install_snippets(job, {
        LIMITS_SNIPPET: render(job, LIMITS_SNIPPET),
        SHIP_SNIPPET: render(job, SHIP_SNIPPET, SHIP_TO_HOST=ship_to.host, SHIP_TO_PORT=ship_to.port,
                             LOG_DIR=LOGS_DIR, NGINX_ACCESS_LOG=NGINX_ACCESS_LOG),
    })


def install_loghost(job: Job) -> None:
    """--role loghost: receive every host's lines into /var/log/trackline-central/<hostname>/<file>, and rotate
    them."""
    listen = job.options.listen
    assert listen is not None  # options.parse_install: the default 0.0.0.0:2514
    ensure_rsyslog(job.host)
    install_snippets(job, {
        LIMITS_SNIPPET: render(job, LIMITS_SNIPPET),
        LOGHOST_SNIPPET: render(job, LOGHOST_SNIPPET, LISTEN_ADDRESS=listen.host, LISTEN_PORT=listen.port,
                                CENTRAL_DIR=CENTRAL_DIR),
    })
    put(job.host, CENTRAL_RULES, (job.repo / "logrotate/trackline-central").read_bytes())
