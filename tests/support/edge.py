"""A real Debian nginx running the edge config that ``scripts/install --role edge --root`` stages, on loopback."""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support.logs import read_json_lines
from support.paths import INSTALL
from support.processes import free_port, open_files, stop_process
from support.requirements import unavailable
from support.staging import run_script
from support.waiting import wait_until

EDGE_CONF = "etc/nginx/conf.d/trackline.conf"
#: The tracking-ID policy's default shape (src/trackline/policy.py) and nginx's $request_id.
VALID_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
REQUEST_ID = re.compile(r"[0-9a-f]{32}")


def require_nginx() -> str:
    """The nginx binary (scripts/test installs Debian's); skip, or fail in CI, without it."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if nginx is None:
        unavailable("needs Debian's nginx (apt-get install nginx; scripts/test does it as root)")
    return nginx


def install_edge(root: Path, upstreams: list[str], listen: str, *options: str) -> subprocess.CompletedProcess[str]:
    """``scripts/install --role edge --root ROOT ...``; fails the test with its output if it fails."""
    args = ["--role", "edge", "--root", str(root), "--listen", listen, *options]
    for upstream in upstreams:
        args += ["--upstream", upstream]
    return run_script(INSTALL, *args, timeout=120)


@dataclass
class Edge:
    """nginx with the staged edge config: its tree under ``dir/root``, its pid and temp files in ``dir``, its
    logs in ``dir/logs`` (the staged /var/log/nginx)."""

    dir: Path
    upstreams: list[str]
    options: tuple[str, ...] = ()
    #: ``(directive, value)`` edits to the staged file, e.g. a short ``proxy_read_timeout`` for a timeout test.
    edits: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def access_log(self) -> Path:
        return self.dir / "logs" / "trackline-access.log"

    @property
    def pid_file(self) -> Path:
        return self.dir / "nginx.pid"

    def write_config(self) -> Path:
        """Stage the edge with scripts/install, then a wrapper nginx.conf that includes it with local paths."""
        self.port = self.port or free_port()
        root = self.dir / "root"
        install_edge(root, self.upstreams, f"127.0.0.1:{self.port}", *self.options)
        text = (root / EDGE_CONF).read_text()
        for directive, value in self.edits.items():
            text, count = re.subn(rf"(?m)^(\s*{directive}) [^;]+;", rf"\1 {value};", text)
            assert count, f"no {directive} in {EDGE_CONF}"
        assert "/var/log/nginx/trackline-access.log" in text
        if not (self.dir / "logs").exists():  # the staged log dir, with the log the installer made before nginx
            (self.dir / "logs").symlink_to(root / "var/log/nginx")
        text = text.replace("/etc/nginx/", f"{root}/etc/nginx/").replace("/var/log/nginx/", f"{self.dir}/logs/")
        (self.dir / "trackline.conf").write_text(text)
        temp = self.dir / "temp"
        temp.mkdir(exist_ok=True)
        config = self.dir / "nginx.conf"
        # Workers run as this user: as root's default "nobody" they could not reopen a log in the test's tmp dir.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};\n"
        config.write_text(
            (user if os.geteuid() == 0 else "")
            + f"worker_processes 2;\npid {self.pid_file};\nerror_log {self.dir}/error.log;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            f"    client_body_temp_path {temp}/body; proxy_temp_path {temp}/proxy;\n"
            f"    fastcgi_temp_path {temp}/fastcgi; uwsgi_temp_path {temp}/uwsgi; scgi_temp_path {temp}/scgi;\n"
            f"    access_log off;\n    include {self.dir}/trackline.conf;\n}}\n"
        )
        return config

    def start(self, attempts: int = 3) -> Edge:
        """Run nginx in the foreground; if another process took the free port meanwhile, try another one."""
        nginx = require_nginx()
        output = self.dir / "nginx.out"
        for _ in range(attempts):
            config = self.write_config()
            test = subprocess.run([nginx, "-t", "-q", "-e", str(self.dir / "error.log"), "-c", str(config)],
                                  capture_output=True, text=True, timeout=30)
            assert test.returncode == 0, test.stderr
            with output.open("wb") as out:
                self.process = subprocess.Popen(  # with systemd's default umask, as Debian's nginx.service runs
                    [nginx, "-e", str(self.dir / "error.log"), "-c", str(config), "-g", "daemon off;"],
                    stdout=subprocess.DEVNULL, stderr=out, umask=0o022,
                )
            if wait_until(self._started, f"nginx listening on 127.0.0.1:{self.port}") == "listening":
                return self
            self.port = 0
        pytest.fail(f"nginx found no free port in {attempts} attempts: {output.read_text()}")

    def _started(self) -> str | None:
        """"listening", "port taken" (nginx exited: another process has the port), or None (not yet)."""
        assert self.process is not None
        if self.process.poll() is not None:
            said = (self.dir / "nginx.out").read_text()
            assert "Address already in use" in said, f"nginx exited with {self.process.returncode}: {said}"
            return "port taken"
        return "listening" if listens(self.process.pid, self.port) else None

    def stop(self, timeout: float = 30.0) -> int:
        """QUIT (graceful stop) the master, our own child, by PID; kill it if it hangs."""
        return stop_process(self.process, timeout, signal.SIGQUIT)

    def logs(self) -> list[dict[str, Any]]:
        return read_json_lines(self.access_log)


def listens(pid: int, port: int) -> bool:
    """Process ``pid`` holds a TCP socket listening on ``port`` (not just anyone: a port can be taken)."""
    try:
        sockets = open_files(pid)
    except OSError:  # it exited meanwhile
        return False
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state, inode = (fields := line.split())[1], fields[3], fields[9]
        if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port and f"socket:[{inode}]" in sockets:
            return True
    return False
