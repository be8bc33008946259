"""``python3 scripts/installer install|uninstall ARGS``: what scripts/install and scripts/uninstall run."""

from __future__ import annotations

import os
import sys

from .options import parse_install, parse_uninstall
from .roles import install
from .system import Failure
from .uninstall import uninstall


def main(argv: list[str] | None = None) -> int:
    """Run ``install`` or ``uninstall`` with the rest of ``argv``; the exit status (a Failure's, said on stderr:
    1, or 2 for a bad value)."""
    words = sys.argv[1:] if argv is None else argv
    if not words or words[0] not in ("install", "uninstall"):
        sys.stderr.write("usage: python3 scripts/installer install|uninstall [OPTION...]\n")
        return 2
    command, *args = words
    os.umask(0o022)  # the service user must be able to read the venv and the config
    try:
        if command == "install":
            install(parse_install(args))
        else:
            uninstall(parse_uninstall(args))
    except (Failure, OSError) as failure:  # OSError: a file that cannot be written, read or removed
        sys.stdout.flush()
        sys.stderr.write(f"{command}: {failure}\n")
        return failure.status if isinstance(failure, Failure) else 1
    except KeyboardInterrupt:
        sys.stderr.write(f"{command}: interrupted\n")
        return 130
    return 0
