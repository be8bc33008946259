"""Helpers for the ops tests: run scripts/install, fingerprint an installed tree, build a wheelhouse, boot the
systemd sandbox (support/sandbox.py)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from support.paths import DEBIAN_PYTHON, REPO
from support.requirements import require_commands, require_venv_support, unavailable
from support.sandbox import Sandbox, SandboxError, prerequisites


def run_script(script: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (install or uninstall) with ``args``; fail the test with its output if it fails."""
    done = subprocess.run([str(script), *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{script.name} {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Every path under ``root``: type, permission bits, owner, group and content hash (or link target)."""
    tree: dict[str, tuple[object, ...]] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        if path.is_symlink():
            content: str = os.readlink(path)
        elif path.is_file():
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            content = "dir"
        tree[str(path.relative_to(root))] = (content, oct(info.st_mode), info.st_uid, info.st_gid)
    return tree


def build_wheelhouse(dest: Path, scratch: Path, extras: str = "[requests]") -> Path:
    """Wheels of trackline (with ``extras``: the service venv's ``[requests]``, ``[requests,celery]`` for a worker)
    and its dependencies for Debian's python3, for
    ``scripts/install --wheelhouse``.

    Built from a copy of the package source, with a throwaway venv of /usr/bin/python3, so that the wheels
    match the interpreter the service venv uses and the checkout stays untouched.
    """
    require_venv_support()
    source = scratch / "source"
    source.mkdir(parents=True)
    shutil.copy2(REPO / "pyproject.toml", source)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    builder = scratch / "builder"
    subprocess.run([DEBIAN_PYTHON, "-m", "venv", builder], check=True, timeout=120)
    done = subprocess.run(
        [builder / "bin" / "python", "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
         "--wheel-dir", dest, f"{source}{extras}"], capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, f"pip wheel failed:\n{done.stdout}{done.stderr}"
    return dest


#: Commands every real-systemd test uses, with their Debian packages.
SANDBOX_COMMANDS = {"unshare": "util-linux", "nsenter": "util-linux", "curl": "curl", "systemctl": "systemd"}


def require_sandbox(commands: dict[str, str] | None = None) -> None:
    """What booting the systemd sandbox needs, and ``commands`` (command -> Debian package) for the test."""
    require_commands({**SANDBOX_COMMANDS, **(commands or {})})
    if missing := prerequisites():
        unavailable(f"real systemd needs {', '.join(missing)}")


def copy_repo(dest: Path) -> None:
    """The project's files, without what a checkout grows (venv, logs, caches, build output), into ``dest``."""
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "logs", "run", "__pycache__", ".pytest_cache", "*.egg-info"))


@contextlib.contextmanager
def booted(tmp_path: Path, carry: Path) -> Iterator[Sandbox]:
    """A booted systemd on an overlay of / (with ``carry`` in it); torn down by its PID 1's PID."""
    try:
        box = Sandbox(tmp_path, carry)
        box.boot()
    except SandboxError as exc:
        unavailable(f"cannot boot systemd in a sandbox here: {exc}")
    try:
        yield box
    finally:
        box.teardown()


def sandbox_get(box: Sandbox, url: str, tracking_id: str, check: bool = True) -> tuple[int, dict[str, str], str]:
    """GET ``url`` with curl inside the sandbox, sending ``tracking_id``: the status (0 if nothing answered),
    the response headers (lower-case names) and the body."""
    out = box.run(["curl", "-sS", "-D", "-", "--max-time", "10", "-H", f"X-Tracking-ID: {tracking_id}", url],
                  check=check).stdout
    head, _, body = out.replace("\r\n", "\n").partition("\n\n")
    if not head:
        return 0, {}, ""
    status_line, *lines = head.split("\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(": ", 1) for line in lines)}
    return int(status_line.split()[1]), headers, body
