"""What the installer asks of the host: its messages, the commands it runs, apt-get."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence


class Failure(Exception):
    """Stops the install (or uninstall): ``prog: MESSAGE`` on stderr, exit status ``status``."""

    status = 1


class BadValue(Failure):
    """An option's value breaks its rule (it would reach a file root runs): a usage error, exit status 2."""

    status = 2


def say(message: str, prog: str = "install") -> None:
    """One line of progress on stdout, named after the script (``install: ...``)."""
    print(f"{prog}: {message}", flush=True)


def run(command: Sequence[str], *, quiet: bool = False, env: dict[str, str] | None = None) -> None:
    """Run ``command`` with our stderr (and our stdout unless ``quiet``); a failure stops the install."""
    try:
        done = subprocess.run(command, stdout=subprocess.DEVNULL if quiet else None,
                              env=None if env is None else {**os.environ, **env})
    except OSError as exc:
        raise Failure(f"{command[0]}: {exc.strerror}") from exc
    if done.returncode != 0:
        raise Failure(f"`{' '.join(command)}` failed with exit status {done.returncode}")


def succeeds(command: Sequence[str]) -> bool:
    """Whether ``command`` runs and exits 0 (its output discarded): a question, not a step."""
    try:
        return subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    except OSError:
        return False


def check_output(command: Sequence[str]) -> tuple[bool, str]:
    """Run a checker (``nginx -t``, ``rsyslogd -N1``): whether it passed, and its stdout and stderr together."""
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except OSError as exc:
        return False, f"{command[0]}: {exc.strerror}"
    return done.returncode == 0, done.stdout


def apt_install(*packages: str) -> None:
    """Debian's ``packages`` with apt-get, quietly."""
    run(["apt-get", "update", "-qq"], quiet=True)
    run(["apt-get", "install", "-y", "-qq", *packages], quiet=True, env={"DEBIAN_FRONTEND": "noninteractive"})


def debian_packages_installed(*packages: str) -> bool:
    """Whether dpkg has every one of ``packages`` installed."""
    try:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Status}\\n", *packages], capture_output=True, text=True)
    except OSError:
        return False
    return done.stdout.splitlines().count("install ok installed") == len(packages)
