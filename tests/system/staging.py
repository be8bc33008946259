"""Helpers for the ops tests: run scripts/install, fingerprint an installed tree, build a wheelhouse, boot the
systemd sandbox."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import Sandbox, SandboxError, prerequisites

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "scripts" / "install"
UNINSTALL = REPO / "scripts" / "uninstall"
DEBIAN_PYTHON = Path("/usr/bin/python3")


def unavailable(reason: str) -> None:
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
