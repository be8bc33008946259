"""The edge: nginx in front of several trackline hosts (docs/edge.md). The shipped server plus three files made
from the options, checked with `nginx -t`; a refused config puts the previous files back."""

from __future__ import annotations

import errno
import grp
import os
import pwd
import shutil
from pathlib import Path

from .files import Backup, make_dirs, put, put_config
from .job import Job
from .layout import (
    EDGE_CONF,
    EDGE_FILES,
    EDGE_INCLUDES,
    LOG_READERS,
    NGINX_ACCESS_LOG,
    NGINX_DIR,
    NGINX_LOG_DIR,
    NGINX_LOG_MODE,
    NGINX_LOG_OWNER,
    NGINX_LOGROTATE,
    NGINX_PID,
    Host,
)
from .options import InstallOptions
from .system import Failure, apt_install, check_output, run, say, succeeds


def nginx_bin() -> str:
    """The nginx on PATH, else Debian's."""
    return shutil.which("nginx") or "/usr/sbin/nginx"


def ensure_nginx(host: Host) -> None:
    """nginx, from Debian's package if missing (a staging tree needs one here to check its config)."""
    if os.access(nginx_bin(), os.X_OK):
        return
    if host.staged:
        raise Failure("nginx is needed to check the staged config: apt-get install nginx")
    say("installing nginx")
    apt_install("nginx")


def edge_includes(options: InstallOptions) -> dict[str, bytes]:
    """/etc/nginx/trackline/*.conf, which nginx/trackline.conf includes, made from the options."""
    assert options.listen is not None  # options.parse_install: --role edge needs --listen
    return {
        f"{EDGE_INCLUDES}/upstreams.conf": "".join(f"server {u.text};\n" for u in options.upstreams).encode(),
        f"{EDGE_INCLUDES}/listen.conf": f"listen {options.listen.text} default_server;\n".encode(),
        f"{EDGE_INCLUDES}/clients.conf": f"default {'on' if options.distrust_clients else 'off'};\n".encode(),
    }


def fingerprint(host: Host) -> list[bytes | None]:
    """The edge files' contents (None: missing), to tell whether an install changed them."""
    return [path.read_bytes() if path.is_file() else None for path in map(host.path, EDGE_FILES)]


def check_command(host: Host, scratch: Path) -> list[str]:
    """`nginx -t` on this host's whole nginx config; for a staging tree, on a wrapper config in ``scratch`` that
    includes the staged server with its /etc/nginx and /var/log/nginx paths pointed into the tree and ``scratch``."""
    if not host.staged:
        return [nginx_bin(), "-t", "-q"]
    scratch.mkdir(parents=True, exist_ok=True)
    server = host.path(EDGE_CONF).read_text()
    server = server.replace(f"{NGINX_DIR}/", f"{host.path(NGINX_DIR)}/").replace(f"{NGINX_LOG_DIR}/", f"{scratch}/")
    (scratch / "trackline.conf").write_text(server)
    (scratch / "nginx.conf").write_text(
        f"pid {scratch}/nginx.pid;\n"
        f"error_log {scratch}/error.log;\n"
        "events {}\n"
        "http {\n"
        f"    client_body_temp_path {scratch}/body; proxy_temp_path {scratch}/proxy;"
        f" fastcgi_temp_path {scratch}/fastcgi;\n"
        f"    uwsgi_temp_path {scratch}/uwsgi; scgi_temp_path {scratch}/scgi;\n"
        "    access_log off;\n"
        f"    include {scratch}/trackline.conf;\n"
        "}\n"
    )
    return [nginx_bin(), "-t", "-q", "-e", f"{scratch}/error.log", "-c", f"{scratch}/nginx.conf"]


def nginx_runs() -> bool:
    """Whether nginx's master runs (per its pid file)."""
    try:
        os.kill(int(Path(NGINX_PID).read_text()), 0)
    except (OSError, ValueError):
        return False
    return True


def log_owner() -> tuple[int, int] | None:
    """www-data's user ID and adm's group ID, when this installer may give a file to them (as root)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(NGINX_LOG_OWNER).pw_uid, grp.getgrnam(LOG_READERS).gr_gid
    except KeyError as exc:
        raise Failure(f"no user '{NGINX_LOG_OWNER}' or group '{LOG_READERS}' here (Debian's nginx makes them)") from exc


def ensure_access_log(host: Host) -> None:
    """The edge's JSON log made (or put right) before nginx opens it: www-data:adm 0640 from its first line, as
    Debian's nginx logs are and its logrotate rules create them. nginx, run as root with systemd's umask 022,
    would make it root's and world-readable until its first rotation."""
    path = host.path(NGINX_ACCESS_LOG)
    make_dirs(path.parent)
    try:  # never through a symbolic link; an existing log is neither truncated nor written
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Failure(f"{NGINX_ACCESS_LOG} is a symbolic link: remove it, nginx's log must be a file") from None
        raise
    try:
        status, owner = os.fstat(fd), log_owner()
        if status.st_mode & 0o7777 == NGINX_LOG_MODE and owner in (None, (status.st_uid, status.st_gid)):
            return
        os.fchmod(fd, NGINX_LOG_MODE)
        if owner is not None:
            os.fchown(fd, *owner)
    finally:
        os.close(fd)
    whose = f"{NGINX_LOG_OWNER}:{LOG_READERS}"
    say(f"made {NGINX_ACCESS_LOG} {whose} {NGINX_LOG_MODE:04o}" if owner else
        f"made {NGINX_ACCESS_LOG} {NGINX_LOG_MODE:04o} (not root: chown it {whose} on the target)")


def reload_nginx(host: Host) -> None:
    """Reload nginx if it runs (by systemd, else by its pid file)."""
    if host.staged:
        say("--root: not reloading nginx")
    elif host.systemd_running() and succeeds(["systemctl", "is-active", "--quiet", "nginx"]):
        run(["systemctl", "reload", "nginx"])
        say("nginx reloaded")
    elif nginx_runs():
        run([nginx_bin(), "-s", "reload"])
        say("nginx reloaded")
    else:
        say("nginx is not running; start it with: systemctl enable --now nginx")


def install_edge(job: Job) -> None:
    """nginx/trackline.conf (an edited one kept) and the includes, checked by `nginx -t`: rolled back if refused,
    nginx reloaded if they changed."""
    host, options = job.host, job.options
    ensure_nginx(host)
    before = fingerprint(host)
    backup = Backup(host, job.tmp / "edge-previous")
    backup.save(*EDGE_FILES)
    put_config(host, EDGE_CONF, (job.repo / "nginx/trackline.conf").read_bytes())
    for path, content in edge_includes(options).items():
        put(host, path, content)
    ensure_access_log(host)  # before `nginx -t`, which opens (and would create) it too
    valid, said = check_output(check_command(host, job.tmp / "nginx-check"))
    if not valid:
        backup.restore()
        said = said.rstrip("\n")
        if "duplicate default server" in said:
            assert options.listen is not None
            said += (f"\nanother site is the default server on {options.listen.text} (Debian's"
                     " /etc/nginx/sites-enabled/default?): remove it, or choose another --listen")
        raise Failure(f"nginx -t refused the edge config, the previous files are back in place:\n{said}")
    say("nginx -t: the edge config is valid")
    if fingerprint(host) != before:
        reload_nginx(host)
    # Debian's /etc/logrotate.d/nginx rotates /var/log/nginx/*.log, trackline-access.log included, and makes
    # nginx reopen them (`invoke-rc.d nginx rotate`: USR1). A second rule for the file would make logrotate fail.
    if not host.path(NGINX_LOGROTATE).is_file():
        say(f"note: no {NGINX_LOGROTATE}: {NGINX_ACCESS_LOG} needs rotation rules that make nginx reopen it with"
            " USR1 (docs/edge.md)")
