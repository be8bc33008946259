"""Run as ``/usr/bin/python3 scripts/installer install|uninstall ARGS`` (what scripts/install and
scripts/uninstall do): the directory is on sys.path as itself, so its parent takes its place."""

import sys
from pathlib import Path

if __package__ in (None, ""):
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.path.insert(0, str(here.parent))

from installer.cli import main

sys.exit(main())
