"""Debian's headless Chromium on a page from a file, with every network request sent to a dead proxy."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from support.requirements import require_commands, unavailable


def chromium() -> str:
    """The chromium command, installed with apt-get if missing (unavailable() where it cannot be had)."""
    found = shutil.which("chromium")
    if found is None:
        require_commands({"chromium": "chromium"})
        found = shutil.which("chromium")
    if found is None:
        unavailable("needs Debian's chromium for the --html page (scripts/test installs it)")
    return found


def browse(page: Path, out: Path, *args: str, fragment: str = "") -> subprocess.CompletedProcess[str]:
    """Headless Chromium on ``page`` (file://) with every network request sent to a dead proxy; its profile and
    outputs under ``out``."""
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--proxy-server=127.0.0.1:9", f"--user-data-dir={out / 'profile'}", *args, page.as_uri() + fragment]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=out)
