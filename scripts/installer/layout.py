"""Names and paths shared by install and uninstall: what goes where on a host, and the staging tree (--root)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: The checkout the installer belongs to: conf/, systemd/, logrotate/, nginx/, rsyslog/, src/.
REPO = Path(__file__).resolve().parents[2]

PYTHON = "/usr/bin/python3"  # Debian's: the service venv is built from it (design.md, "Testing for real")
SERVICE_USER = "trackline"
LOG_READERS = "adm"  # Debian's group of those who read logs: the group of every log trackline installs
DEFAULT_PREFIX = "/opt/trackline"  # the venv is PREFIX/venv
ROLES = ("web", "worker", "edge", "loghost")

CONF_DIR = "/etc/trackline"
LOGS_DIR = "/var/log/trackline"
RUNTIME_DIR = "/run/trackline"
UNIT_DIR = "/etc/systemd/system"
WEB_UNIT = "trackline.service"
WORKER_UNIT = "trackline-worker.service"
#: The log host's daily `trackline compact` (docs/sql.md): a oneshot service and the timer that starts it.
COMPACT_UNIT = "trackline-compact.service"
COMPACT_TIMER = "trackline-compact.timer"
#: The log shipper of a web or worker host: an rsyslogd of its own, as the service user (docs/log-host.md).
SHIP_UNIT = "trackline-ship.service"
UNITS = (WEB_UNIT, WORKER_UNIT, COMPACT_UNIT, SHIP_UNIT)
TIMERS = (COMPACT_TIMER,)
LOGROTATE_D = "/etc/logrotate.d"
RULES = f"{LOGROTATE_D}/trackline"  # logrotate/trackline: the web and worker logs
CENTRAL_RULES = f"{LOGROTATE_D}/trackline-central"  # logrotate/trackline-central: the log host's tree

#: The `trackline` command on PATH; one that does not carry the mark is not ours and is left alone.
COMMAND = "/usr/local/bin/trackline"
COMMAND_MARK = "installed by trackline's scripts/install"

#: The edge: nginx/trackline.conf (kept when edited) and the three files made from the options.
NGINX_DIR = "/etc/nginx"
NGINX_LOG_DIR = "/var/log/nginx"
NGINX_PID = "/run/nginx.pid"
EDGE_CONF = f"{NGINX_DIR}/conf.d/trackline.conf"
EDGE_INCLUDES = f"{NGINX_DIR}/trackline"
EDGE_INCLUDE_NAMES = ("upstreams.conf", "listen.conf", "clients.conf")
EDGE_FILES = (EDGE_CONF, *(f"{EDGE_INCLUDES}/{name}" for name in EDGE_INCLUDE_NAMES))
NGINX_ACCESS_LOG = f"{NGINX_LOG_DIR}/trackline-access.log"  # the edge's nginx writes it (docs/edge.md)
#: Debian's owner and mode for nginx's logs (its postinst, its logrotate `create`): the edge's from its first line.
NGINX_LOG_OWNER = "www-data"
NGINX_LOG_MODE = 0o640
NGINX_LOGROTATE = f"{LOGROTATE_D}/nginx"  # Debian's rules, which rotate the edge's log too

#: Log shipping (--ship-to) and the log host (--role loghost): rsyslog snippets over RELP (docs/log-host.md).
RSYSLOG_D = "/etc/rsyslog.d"
LIMITS_SNIPPET = "trackline-limits.conf"
SHIP_SNIPPET = "trackline-ship.conf"
LOGHOST_SNIPPET = "trackline-loghost.conf"
SNIPPETS = (LIMITS_SNIPPET, SHIP_SNIPPET, LOGHOST_SNIPPET)
CENTRAL_DIR = "/var/log/trackline-central"
#: The TLS files of a sender or a log host (--tls-ca, --tls-cert, --tls-key), copied here: the key 0600.
TLS_DIR = "/etc/trackline/tls"
TLS_CA, TLS_CERT, TLS_KEY = (f"{TLS_DIR}/{name}" for name in ("ca.pem", "cert.pem", "key.pem"))
#: trackline-ship.service's configuration (rsyslog/trackline-ship.conf and the limits), its work directory
#: (StateDirectory=) and the files it reads in LOGS_DIR: fixed names, never a wildcard.
SHIPPER_CONF = f"{CONF_DIR}/rsyslog-ship.conf"
SHIP_STATE_DIR = "/var/lib/trackline-ship"
SHIPPED_LOGS = ("app.log", "access.log", "error.log", "worker.log")
DEFAULT_LISTEN = "127.0.0.1"  # the log host's RELP address (each sender has a port of its own)

SYSTEMD_RUNNING = "/run/systemd/system"  # exists when systemd is PID 1 (sd_booted)


@dataclass(frozen=True)
class Host:
    """Where the files go: this host (``root`` empty) or the staging tree ``root`` (--root DIR), which gets the
    same files under ``root`` with no user, no systemctl and no reload."""

    root: str = ""

    @property
    def staged(self) -> bool:
        return bool(self.root)

    def path(self, path: str) -> Path:
        """The file that is ``path`` (absolute, as on the host) here."""
        return Path(self.root + path)

    def systemd_running(self) -> bool:
        """Whether systemctl is to be run: systemd is PID 1 and this is no staging tree."""
        return not self.staged and Path(SYSTEMD_RUNNING).is_dir()
