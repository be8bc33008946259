"""Processes a test starts itself: a free loopback port for them, stopping them by their PID, and Python code
run in a process of its own."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (another process may take it before the test does)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 40.0,
                 sig: signal.Signals = signal.SIGTERM) -> int:
    """Send ``sig`` to ``process`` (a child the test started, by PID) and wait for it; kill it if it hangs; its
    status (the earlier one if it had already exited, 0 if it never started)."""
    if process is None or process.poll() is not None:
        return process.returncode if process else 0
    process.send_signal(sig)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def open_files(pid: int) -> set[str]:
    """What process ``pid`` has open, by ``/proc/PID/fd``: file paths, ``socket:[INODE]``, ..."""
    targets = set()
    for descriptor in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed since the listing
            targets.add(os.readlink(descriptor))
    return targets


def run_python(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with the test's Python in a process of its own (to patch, fork or exit freely)."""
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60, env=env)
