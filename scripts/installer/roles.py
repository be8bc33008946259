"""One function per host role: the steps it takes, in order. install() runs the role of the options."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from .compact import install_compaction
from .edge import install_edge
from .job import Job
from .layout import PYTHON, REPO, WEB_UNIT, WORKER_UNIT
from .options import InstallOptions
from .rsyslog import install_loghost, install_shipping
from .service import adopt_installed_logs, ensure_user, install_command, install_config, install_unit, reload_systemd
from .system import say
from .venv import ensure_venv


def web(job: Job) -> None:
    """The trackline service: user, venv, /etc/trackline, unit and rules, the command, systemd reloaded."""
    ensure_user(job.host)
    ensure_venv(job)
    install_config(job)
    install_unit(job, WEB_UNIT)
    adopt_installed_logs(job.host)
    install_command(job)
    reload_systemd(job.host, WEB_UNIT)


def worker(job: Job) -> None:
    """The Celery worker (docs/celery.md): as web, with trackline[celery] and trackline-worker.service."""
    ensure_user(job.host)
    ensure_venv(job, extras=",celery")
    install_config(job)
    install_unit(job, WORKER_UNIT)
    adopt_installed_logs(job.host)
    install_command(job)
    reload_systemd(job.host, WORKER_UNIT)


def edge(job: Job) -> None:
    """nginx in front of several web hosts (docs/edge.md)."""
    install_edge(job)


def loghost(job: Job) -> None:
    """The central log host (docs/log-host.md): the venv (with trackline[sql]) and command for `trackline trace`
    and `sql`, rsyslog's receiver, and the daily `trackline compact` (docs/sql.md)."""
    ensure_venv(job, extras=",sql")
    install_command(job)
    install_loghost(job)
    install_compaction(job)


ROLES: dict[str, Callable[[Job], None]] = {"web": web, "worker": worker, "edge": edge, "loghost": loghost}


def install(options: InstallOptions, repo: Path = REPO, python: str = PYTHON) -> None:
    """Install the role of ``options`` (then log shipping, if asked for) from ``repo``'s files and a venv made
    by ``python``, with a scratch directory of its own."""
    with tempfile.TemporaryDirectory(prefix="trackline-install.") as tmp:
        job = Job(options, Path(tmp), repo, python)
        ROLES[options.role](job)
        if options.ship_to:
            install_shipping(job)
    say("done")
