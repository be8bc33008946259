"""Remove what install put in place: the services, their files, the edge's and the log shipping's. The
configuration, the logs and the user stay unless purged; the log host's central tree always stays."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil

from .layout import (
    CENTRAL_RULES,
    COMMAND,
    CONF_DIR,
    EDGE_CONF,
    EDGE_INCLUDES,
    LOGS_DIR,
    RSYSLOG_D,
    RULES,
    SERVICE_USER,
    SHIP_STATE_DIR,
    SHIPPER_CONF,
    SNIPPETS,
    TIMERS,
    UNIT_DIR,
    UNITS,
    Host,
)
from .options import UninstallOptions
from .service import is_ours
from .system import run, succeeds
from .system import say as _say


def say(message: str) -> None:
    _say(message, "uninstall")


def remove(host: Host, *paths: str) -> list[str]:
    """Delete those of ``paths`` that exist (a directory with its content) and say so; the ones removed."""
    removed = []
    for path in paths:
        dest = host.path(path)
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        elif dest.exists() or dest.is_symlink():
            dest.unlink()
        else:
            continue
        say(f"removed {path}")
        removed.append(path)
    return removed


def stop_services(host: Host) -> None:
    """Stop and disable the timers, then the units, that systemd knows."""
    for unit in (*TIMERS, *UNITS):
        if host.systemd_running() and succeeds(["systemctl", "cat", unit]):
            run(["systemctl", "disable", "--now", unit])
            say(f"stopped and disabled {unit}")


def remove_services(host: Host, prefix: str) -> None:
    """The units, the rules, the venv (and the prefix if that leaves it empty), and the command if ours."""
    remove(host, *(f"{UNIT_DIR}/{unit}" for unit in (*UNITS, *TIMERS)), RULES, f"{prefix}/venv")
    if is_ours(host):
        remove(host, COMMAND)
    else:
        say(f"left {COMMAND} alone: scripts/install did not put it there")
    with contextlib.suppress(OSError):  # not empty, or not there
        os.rmdir(host.path(prefix))


def remove_log_shipping(host: Host) -> None:
    """The shipper's configuration (its unit goes with the others), the rsyslog snippets and the central rules;
    rsyslog goes on without them."""
    remove(host, CENTRAL_RULES, SHIPPER_CONF)
    snippets = remove(host, *(f"{RSYSLOG_D}/{name}" for name in SNIPPETS))
    if snippets and host.systemd_running():
        run(["systemctl", "try-restart", "rsyslog"])
        say(f"restarted rsyslog without {' '.join(snippets)}")


def remove_edge(host: Host) -> None:
    """The edge's nginx files; nginx goes on without trackline's server."""
    if not host.path(EDGE_CONF).exists():
        return
    remove(host, EDGE_CONF, f"{EDGE_CONF}.dist", EDGE_INCLUDES)
    if host.systemd_running() and succeeds(["systemctl", "is-active", "--quiet", "nginx"]):
        run(["systemctl", "reload", "nginx"])
        say("reloaded nginx without trackline's edge")


def purge(host: Host) -> None:
    """The configuration, the logs and the user."""
    remove(host, CONF_DIR, LOGS_DIR, SHIP_STATE_DIR)
    if host.staged:
        return
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return
    run(["userdel", SERVICE_USER])
    say(f"removed user '{SERVICE_USER}'")


def uninstall(options: UninstallOptions) -> None:
    """Everything install wrote, in the order that leaves no running service without its files."""
    host = Host(options.root)
    stop_services(host)
    remove_services(host, options.prefix)
    remove_log_shipping(host)
    remove_edge(host)
    if host.systemd_running():
        run(["systemctl", "daemon-reload"])
    if options.purge:
        purge(host)
    else:
        say(f"kept {CONF_DIR} and {LOGS_DIR} (delete them with --purge)")
