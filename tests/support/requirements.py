"""What a test needs from the machine: Debian packages it installs itself if it can, else a skip with the
reason (in CI, where the machine must have everything, a failure)."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import NoReturn

import pytest

from support.paths import DEBIAN_PYTHON


def unavailable(reason: str) -> NoReturn:
    """Skip for ``reason``; in CI (CI=true) the machine must have it, so fail instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must be able to run this test: {reason}")
    pytest.skip(reason)


def apt_install(*packages: str) -> None:
    """Install Debian ``packages`` (the test needs them); unavailable() if that is not possible here."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        unavailable(f"needs Debian packages {', '.join(packages)} (root and apt-get to install them)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=300)
    done = subprocess.run(["apt-get", "install", "-y", "-qq", *packages], env=env, capture_output=True, text=True,
                          timeout=600)
    if done.returncode != 0:
        unavailable(f"apt-get install {' '.join(packages)} failed: {done.stderr[-500:]}")


def require_commands(packages: dict[str, str]) -> None:
    """``packages`` maps a command to its Debian package: install the packages of the missing commands."""
    missing = sorted({package for command, package in packages.items() if not shutil.which(command)})
    if missing:
        apt_install(*missing)


def require_venv_support() -> None:
    """Debian's python3 with venv + ensurepip (python3-venv): what scripts/install builds the service venv from."""

    def works() -> bool:
        check = [str(DEBIAN_PYTHON), "-c", "import ensurepip, venv"]
        return DEBIAN_PYTHON.exists() and subprocess.run(check, capture_output=True).returncode == 0

    if not works():
        apt_install("python3", "python3-venv")
        if not works():
            unavailable("python3-venv did not make `/usr/bin/python3 -m venv` work")
