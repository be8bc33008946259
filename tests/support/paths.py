"""The checkout's places that tests use."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"
#: The ``trackline`` command of the test's venv.
TRACKLINE = Path(sys.executable).with_name("trackline")
INSTALL = REPO / "scripts" / "install"
UNINSTALL = REPO / "scripts" / "uninstall"
#: Debian's python3: what scripts/install builds the service venv from (the service user cannot run pyenv's).
DEBIAN_PYTHON = Path("/usr/bin/python3")
