"""Files put in place idempotently: written only when their content or mode differs, an operator's edited
configuration kept (the new default beside it as ``*.dist``), and copies to roll a refused change back."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .layout import Host
from .system import say


def make_dirs(directory: Path) -> None:
    """``directory`` and its missing parents, each new one 0755 (as ``install -D`` makes them)."""
    missing = []
    while not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    for new in reversed(missing):
        new.mkdir()
        new.chmod(0o755)


def write(dest: Path, content: bytes, mode: int) -> None:
    """Replace ``dest`` with ``content`` and ``mode`` in one step (a new file renamed over it)."""
    make_dirs(dest.parent)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(content)
            os.fchmod(file.fileno(), mode)
        os.replace(name, dest)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def has(dest: Path, content: bytes) -> bool:
    """Whether ``dest`` is a file holding ``content``."""
    return dest.is_file() and dest.read_bytes() == content


def put(host: Host, path: str, content: bytes, mode: int = 0o644) -> bool:
    """``content`` at ``path`` with ``mode`` unless it is there already (then nothing is touched, not even a
    timestamp); says ``installed PATH`` and returns True when it wrote."""
    dest = host.path(path)
    if not dest.is_symlink() and has(dest, content) and dest.stat().st_mode & 0o7777 == mode:
        return False
    write(dest, content, mode)
    say(f"installed {path}")
    return True


def put_config(host: Host, path: str, content: bytes) -> None:
    """A configuration file: installed when missing; when the operator's differs, it is kept and ``content``
    goes beside it as ``PATH.dist``."""
    dest = host.path(path)
    if not dest.exists():
        put(host, path, content)
    elif not has(dest, content):
        dist = host.path(f"{path}.dist")
        if not has(dist, content):
            write(dist, content, 0o644)
        say(f"kept your edited {path}; the new default is {path}.dist (compare: diff {path} {path}.dist)")


class Backup:
    """Copies of files (content, mode, times) taken before they change, to put back if a check refuses them."""

    def __init__(self, host: Host, store: Path) -> None:
        self.host, self.store = host, store
        self.saved: dict[str, Path | None] = {}  # path -> its copy, or None: it did not exist

    def save(self, *paths: str) -> None:
        for path in paths:
            source = self.host.path(path)
            copy = None
            if source.is_file():
                copy = self.store / path.lstrip("/")
                make_dirs(copy.parent)
                shutil.copy2(source, copy)
            self.saved[path] = copy

    def restore(self) -> None:
        """Every saved file as it was; the ones that did not exist removed."""
        for path, copy in self.saved.items():
            dest = self.host.path(path)
            if copy is not None:
                shutil.copy2(copy, dest)
            else:
                dest.unlink(missing_ok=True)
