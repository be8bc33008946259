"""The trackline services' files (web and worker): the user, /etc/trackline/*.yaml, the units, the logrotate
rules, the `trackline` command, and systemd told about them."""

from __future__ import annotations

import grp
import os
import pwd
import re
import stat
from pathlib import Path

from .files import put, put_config
from .job import Job
from .layout import (
    COMMAND,
    COMMAND_MARK,
    CONF_DIR,
    DEFAULT_PREFIX,
    LOG_READERS,
    LOGS_DIR,
    RULES,
    RUNTIME_DIR,
    SERVICE_USER,
    UNIT_DIR,
    Host,
)
from .system import Failure, run, say


def ensure_user(host: Host) -> None:
    """The `trackline` system user (no home, no login shell), unless it exists or this is a staging tree."""
    if host.staged:
        say(f"--root: not creating the '{SERVICE_USER}' user (create it on the target host, e.g. in postinst)")
        return
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        run(["useradd", "--system", "--user-group", "--home-dir", "/nonexistent", "--no-create-home",
             "--shell", "/usr/sbin/nologin", "--comment", "trackline service", SERVICE_USER])
        say(f"created system user '{SERVICE_USER}'")


def config_content(job: Job, name: str) -> bytes:
    """/etc/trackline/NAME as shipped in conf/NAME; gunicorn.yaml names the app of --app."""
    content = (job.repo / "conf" / name).read_bytes()
    if name == "gunicorn.yaml" and job.options.app:
        quoted = job.options.app.replace("'", "''")
        content += f"\n# The app to serve (scripts/install --app).\nwsgi_app: '{quoted}'\n".encode()
    return content


def install_config(job: Job) -> None:
    """Every conf/*.yaml into /etc/trackline, an operator's edited file kept (the new one beside it as .dist)."""
    host, app = job.host, job.options.app
    for source in sorted((job.repo / "conf").glob("*.yaml")):
        path = f"{CONF_DIR}/{source.name}"
        dest = host.path(path)
        if app and source.name == "gunicorn.yaml" and dest.is_file() and dest.read_bytes() == source.read_bytes():
            dest.unlink()  # the shipped default, never edited: it becomes the one that names the app
        put_config(host, path, config_content(job, source.name))
        if app and source.name == "gunicorn.yaml" and not re.search(rb"(?m)^wsgi_app:", dest.read_bytes()):
            say(f"to serve {app}, add to {path}: wsgi_app: '{app}'")


def install_unit(job: Job, unit: str) -> None:
    """systemd/UNIT (its paths under the --prefix) into /etc/systemd/system, and the logrotate rules."""
    text = (job.repo / "systemd" / unit).read_text()
    put(job.host, f"{UNIT_DIR}/{unit}", text.replace(f"{DEFAULT_PREFIX}/", f"{job.options.prefix}/").encode())
    put(job.host, RULES, (job.repo / "logrotate/trackline").read_bytes())


#: /var/log/trackline's mode: the service user writes, adm reads, new files get the group adm (setgid).
LOGS_DIR_MODE = 0o2750


def adopt_logs(directory: Path, uid: int, gid: int) -> int:
    """``directory`` (the logs of a host installed before, trackline:trackline 0750) made ``uid``:``gid``
    2750 and each log in it group ``gid``, at most 0640; how many files changed. Only the regular files of
    ``uid`` with one link are touched, through a descriptor opened without following a link: never a file
    the service user linked in from elsewhere."""
    os.chown(directory, uid, gid, follow_symlinks=False)
    os.chmod(directory, LOGS_DIR_MODE)
    changed = 0
    for entry in os.scandir(directory):
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:  # a symbolic link (ELOOP), or gone meanwhile
            continue
        try:
            status = os.fstat(fd)
            if not stat.S_ISREG(status.st_mode) or status.st_uid != uid or status.st_nlink != 1:
                continue
            mode = status.st_mode & 0o640
            if (status.st_gid, status.st_mode & 0o7777) != (gid, mode):
                os.fchown(fd, -1, gid)
                os.fchmod(fd, mode)
                changed += 1
        finally:
            os.close(fd)
    return changed


def adopt_installed_logs(host: Host) -> None:
    """On a host that has /var/log/trackline already (an upgrade): the directory and its logs readable by adm
    now, not from their next rotation on. The unit keeps the directory so from its next start."""
    directory = host.path(LOGS_DIR)
    if host.staged or directory.is_symlink() or not directory.is_dir():
        return
    try:
        uid, gid = pwd.getpwnam(SERVICE_USER).pw_uid, grp.getgrnam(LOG_READERS).gr_gid
    except KeyError as exc:
        raise Failure(f"no user '{SERVICE_USER}' or no group '{LOG_READERS}' (Debian's base-passwd has it)") from exc
    changed = adopt_logs(directory, uid, gid)
    if changed:
        say(f"{LOGS_DIR}: {changed} logs made readable by the group {LOG_READERS}")


def command_script(venv: str) -> bytes:
    """/usr/local/bin/trackline: the venv's trackline with the directories systemd gives the service, so that
    `sudo trackline trace ID` and `sudo -u trackline trackline check-config` see what the service sees."""
    return (
        "#!/bin/sh\n"
        f"# trackline with the service's directories ({COMMAND_MARK}; see docs/deploy.md).\n"
        f'export CONFIGURATION_DIRECTORY="${{CONFIGURATION_DIRECTORY:-{CONF_DIR}}}"\n'
        f'export LOGS_DIRECTORY="${{LOGS_DIRECTORY:-{LOGS_DIR}}}"\n'
        f'export RUNTIME_DIRECTORY="${{RUNTIME_DIRECTORY:-{RUNTIME_DIR}}}"\n'
        f'exec "{venv}/bin/trackline" "$@"\n'
    ).encode()


def is_ours(host: Host) -> bool:
    """Whether /usr/local/bin/trackline is missing or was written by this installer (it carries the mark)."""
    command = host.path(COMMAND)
    return not command.exists() or (command.is_file() and COMMAND_MARK.encode() in command.read_bytes())


def install_command(job: Job) -> None:
    """The `trackline` command on PATH; a file there that is not ours is left alone."""
    if not is_ours(job.host):
        say(f"left {COMMAND} alone: it is not trackline's (use {job.options.venv}/bin/trackline)")
        return
    put(job.host, COMMAND, command_script(job.options.venv), 0o755)


def reload_systemd(host: Host, unit: str) -> None:
    """`systemctl daemon-reload` when systemd runs this host, and how to start ``unit``."""
    if host.staged:
        say("--root: not running systemctl daemon-reload")
    elif host.systemd_running():
        run(["systemctl", "daemon-reload"])
        say(f"systemd reloaded; start with: systemctl enable --now {unit.removesuffix('.service')}")
    else:
        say("systemd is not running here; the unit is installed for its next boot")
