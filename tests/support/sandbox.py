"""Boot a throwaway systemd as PID 1 on a copy-on-write overlay of ``/`` (never on the real root).

systemd runs in new pid, mount, net and cgroup namespaces, with ``/`` seen through an overlay whose upper
layer is a tmpfs: everything it (or a test) writes, deletes or mounts stays in the namespace and is gone
when its PID 1 is killed. ``/proc/sys`` and ``/sys`` are read-only and ``/dev`` holds only the basic nodes,
and modprobe units are masked, so it cannot change the host kernel's settings, modules or devices; in every
cgroup hierarchy its cgroup namespace is rooted at a new child of this process's cgroup, removed on exit.
Files put on the host after the boot may not be visible inside: prepare them first.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

SYSTEMD = Path("/lib/systemd/systemd")

#: Where the directory given as ``carry`` appears inside the sandbox.
CARRIED = Path("/srv/carry")

# Runs as PID 1 of the new namespaces, then becomes systemd. $1: an empty host directory for the overlay;
# $2: a host directory to copy into the overlay's /srv/carry (never bind-mounted: the host stays untouched).
_BOOT = r"""
set -eu
S="$1" R="$1/root" CARRY="$2"
mount --make-rprivate /
mount -t tmpfs -o mode=0755 tl-sandbox "$S"
mkdir "$S/upper" "$S/work" "$R"
mount -t overlay tl-sandbox -o "lowerdir=/,upperdir=$S/upper,workdir=$S/work" "$R"
mount -t proc proc "$R/proc"
mount --bind "$R/proc/sys" "$R/proc/sys"
mount -o remount,bind,ro "$R/proc/sys"
mount -t sysfs -o ro sysfs "$R/sys"
mount -t tmpfs -o mode=0755,nosuid dev "$R/dev"
for node in null zero full random urandom tty; do
    touch "$R/dev/$node"
    mount --bind "/dev/$node" "$R/dev/$node"
done
mkdir "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
mount -t tmpfs -o mode=1777 shm "$R/dev/shm"
mkdir -p "$R/srv/carry"
cp -a "$CARRY/." "$R/srv/carry/"  # before the boot: systemd-tmpfiles would empty a /tmp path, and the host
                                  # files of a directory read after the overlay is mounted may not be seen
for unit in modprobe@.service systemd-modules-load.service; do  # no kernel modules loaded from in here
    ln -sf /dev/null "$R/etc/systemd/system/$unit"
done
cd "$R"
mkdir .host
pivot_root . .host
cd /
umount -l /.host
rmdir /.host
[ "$(stat -f -c %T /)" = overlayfs ] || { echo "refusing to boot systemd: / is not the overlay" >&2; exit 1; }
exec env -i container=other PATH=/usr/sbin:/usr/bin:/sbin:/bin "$0" --unit=basic.target --show-status=no
"""


class SandboxError(Exception):
    """The sandbox could not be booted here (no root, no namespaces, no overlay, no systemd)."""


def prerequisites() -> list[str]:
    """What this machine lacks for a sandbox boot (empty when it can be tried)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (namespaces, overlay and pivot_root need it)")
    if not SYSTEMD.exists():
        missing.append(f"{SYSTEMD} (apt-get install systemd)")
    for tool in ("unshare", "nsenter"):
        if not shutil.which(tool):
            missing.append(f"{tool} (apt-get install util-linux)")
    return missing


class Sandbox:
    """systemd in its own namespaces: ``boot()``, then ``run()`` commands in it; always ``teardown()``.

    ``carry`` (a host directory) is copied to ``CARRIED`` inside before systemd starts.
    """

    def __init__(self, workdir: Path, carry: Path) -> None:
        self.workdir = workdir
        self.carry = carry
        self.boot_log = workdir / "boot.log"
        name = f"trackline-sandbox-{os.getpid()}-{time.monotonic_ns()}"
        self.cgroups = [own / name for own in _own_cgroups()]
        self.unshare: subprocess.Popen[bytes] | None = None
        self.pid1 = 0

    def boot(self, timeout: float = 60.0) -> None:
        """Start systemd and wait until its boot jobs are done; if it cannot, tear down and raise SandboxError."""
        try:
            self._boot(timeout)
        except BaseException:
            self.teardown()
            raise

    def _boot(self, timeout: float) -> None:
        overlay = self.workdir / "overlay"
        overlay.mkdir(parents=True)
        for cgroup in self.cgroups:
            cgroup.mkdir()
            for inherited in ("cpuset.cpus", "cpuset.mems"):  # a new v1 cpuset has none: copy the parent's
                if (cgroup / inherited).exists():
                    (cgroup / inherited).write_text((cgroup.parent / inherited).read_text())
        with self.boot_log.open("wb") as log:
            # The outer shell joins the new cgroups, so that systemd's cgroup namespace is rooted there.
            join_cgroups = 'while [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs"; shift; done; shift; exec "$@"'
            self.unshare = subprocess.Popen(
                ["sh", "-c", join_cgroups, "sh", *map(str, self.cgroups), "--",
                 "unshare", "--pid", "--mount", "--net", "--cgroup", "--fork", "--kill-child",
                 "bash", "-c", _BOOT, str(SYSTEMD), str(overlay), str(self.carry)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        # Until the boot script execs systemd (after pivot_root), entering it would reach the host's / and
        # /run, where a host systemd could answer is-system-running for the sandbox.
        while not (self.pid1 and _command_of(self.pid1) == "systemd"):
            self._check_alive()
            self.pid1 = self.pid1 or _child_of(self.unshare.pid)
            _sleep_until(deadline, "systemd to start as the sandbox's PID 1")
        while True:
            self._check_alive()
            try:
                state = self.run(["systemctl", "is-system-running"], check=False, timeout=10).stdout.strip()
            except subprocess.TimeoutExpired:
                state = "not answering within 10 s"
            if state in ("running", "degraded"):
                return
            _sleep_until(deadline, f"the sandbox's boot (state {state!r}; {self.boot_log})")

    def _check_alive(self) -> None:
        assert self.unshare is not None
        if self.unshare.poll() is not None:
            log = self.boot_log.read_text(errors="replace")[-2000:]
            raise SandboxError(f"sandbox exited with {self.unshare.returncode}: {log}")

    def run(self, argv: Sequence[str], check: bool = True, timeout: float = 60.0,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the sandbox (as root, in its namespaces and root file system)."""
        enter = ["nsenter", "--target", str(self.pid1), "--mount", "--pid", "--net", "--cgroup", "--root", "--wd"]
        result = subprocess.run(
            [*enter, *argv],
            capture_output=True, text=True, timeout=timeout, input=input,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited with {result.returncode}:\n{result.stdout}{result.stderr}")
        return result

    def teardown(self, timeout: float = 30.0) -> None:
        """Kill the sandbox's PID 1 (and with it every process in its namespace) and remove its cgroups."""
        if self.pid1:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid1, signal.SIGKILL)
        if self.unshare is not None:
            if self.unshare.poll() is None:
                self.unshare.kill()  # --kill-child takes PID 1 down with it if it is still there
            self.unshare.wait(timeout)
        deadline = time.monotonic() + timeout
        for cgroup in self.cgroups:
            while cgroup.exists():
                try:
                    for directory in sorted(cgroup.rglob("*/"), key=lambda p: len(p.parts), reverse=True):
                        directory.rmdir()
                    cgroup.rmdir()
                except OSError:  # a process is still exiting
                    _sleep_until(deadline, f"{cgroup} to empty")


def _own_cgroups() -> list[Path]:
    """This process's cgroup directory in every mounted cgroup hierarchy (v1 controllers and v2)."""
    mounts: dict[frozenset[str], Path] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" - ")[1].split()  # fstype, source, super options
        if fields[0] in ("cgroup", "cgroup2"):
            options = frozenset(fields[2].split(",")) if fields[0] == "cgroup" else frozenset({""})
            mounts.setdefault(options, Path(line.split()[4]))
    own = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        wanted = frozenset(controllers.split(","))
        mount = next((m for options, m in mounts.items() if wanted <= options), None)
        if mount is None:
            raise SandboxError(f"cgroup hierarchy {controllers or 'v2'} is not mounted")
        own.append(mount / path.lstrip("/"))
    return own


def _child_of(pid: int) -> int:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0
    return int(children[0]) if children else 0


def _command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _sleep_until(deadline: float, what: str) -> None:
    if time.monotonic() > deadline:
        raise SandboxError(f"timed out waiting for {what}")
    time.sleep(0.1)
