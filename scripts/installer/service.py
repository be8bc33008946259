"""The trackline services' files (web and worker): the user, /etc/trackline/*.yaml, the units, the logrotate
rules, the `trackline` command, and systemd told about them."""

from __future__ import annotations

import pwd
import re

from .files import put, put_config
from .job import Job
from .layout import (
    COMMAND,
    COMMAND_MARK,
    CONF_DIR,
    DEFAULT_PREFIX,
    LOGS_DIR,
    RULES,
    RUNTIME_DIR,
    SERVICE_USER,
    UNIT_DIR,
    Host,
)
from .system import run, say


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
