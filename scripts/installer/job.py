"""One install run: the checked options, where the files go, where they come from, a scratch directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .layout import PYTHON, REPO, Host
from .options import InstallOptions


@dataclass(frozen=True)
class Job:
    """What every step of one install may read; nothing in it changes while the install runs."""

    options: InstallOptions
    tmp: Path  # removed when the install ends
    repo: Path = REPO  # conf/, systemd/, logrotate/, nginx/, rsyslog/ and the package's source
    python: str = PYTHON  # the interpreter the venv is made from

    @property
    def host(self) -> Host:
        return Host(self.options.root)
