"""Everything ``trackline serve`` reads from the config directory, loaded and checked as one unit."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gunicorn import util
from gunicorn.config import Config
from gunicorn.errors import ConfigError as GunicornConfigError

from trackline.appconfig import AppConfig, load_app_config
from trackline.config import GUNICORN_FILE, LOGGING_FILE, ConfigError, read_yaml, writable_directory
from trackline.logs.setup import check_logging_config, destinations
from trackline.server.access import is_gevent_worker, use_app_config
from trackline.server.hooks import install_hooks
from trackline.server.loading import AppSource, LoadProblem, import_problem

LOGGER_CLASS = "trackline.server.access.JsonLogger"

#: Gunicorn settings that trackline owns, with where to make that change instead.
OWNED_SETTINGS = {
    "config": "trackline reads gunicorn.yaml itself",
    "logger_class": f"trackline uses {LOGGER_CLASS}",
    "logconfig": "logging is configured in logging.yaml",
    "logconfig_dict": "logging is configured in logging.yaml",
    "logconfig_json": "logging is configured in logging.yaml",
    "accesslog": "log files are configured in logging.yaml",
    "errorlog": "log files are configured in logging.yaml",
    "loglevel": "log levels are configured in logging.yaml",
    "access_log_format": "access lines are JSON with fixed field names (see README)",
    "capture_output": "it would write non-JSON text into error.log",
}

#: The longest path a unix socket can bind to on Linux (``sun_path`` is 108 bytes with its NUL).
MAX_UNIX_SOCKET_PATH = 107

#: ``TRACKLINE_LOG_TO``: where every log line goes, and the dictConfig file of the config directory that says how.
LOG_TO = {"files": LOGGING_FILE, "stdout": "logging.stdout.yaml"}

#: Settings naming a file whose directory trackline creates if missing (like the log directory).
RUNTIME_FILES = frozenset({"pidfile", "control_socket"})

@dataclass(frozen=True)
class ServerConfig:
    """The checked contents of a config directory."""

    conf_dir: Path
    settings: dict[str, Any]
    logging: dict[str, Any]
    app: AppConfig
    source: AppSource
    logging_file: str = LOGGING_FILE  # logging.yaml, or logging.stdout.yaml with TRACKLINE_LOG_TO=stdout

    def apply(self, cfg: Config) -> None:
        """Put these settings, the logging dictConfig and trackline's logger class into gunicorn's ``cfg``."""
        for name, value in self.settings.items():
            cfg.set(name, value)
        cfg.set("logconfig_dict", self.logging)
        cfg.set("logger_class", LOGGER_CLASS)
        use_app_config(cfg, self.app)  # redaction and access sample: docs/redaction.md
        install_hooks(cfg, self.app, envelope=self.source.spec is None or self.app.error_envelope)

    def gunicorn_config(self) -> Config:
        """A gunicorn ``Config`` as ``trackline serve`` runs it (gunicorn's defaults filled in)."""
        cfg = Config()
        self.apply(cfg)
        return cfg

    @property
    def logs_to(self) -> str:
        """Where ``trackline serve``'s lines go: the files of the handlers its loggers have, else stdout."""
        return destinations(self.logging, self.conf_dir / self.logging_file, used_only=True)

    def describe(self) -> str:
        """What ``trackline serve`` runs with this config (gunicorn's defaults filled in)."""
        cfg = self.gunicorn_config()
        lines = [
            f"config OK: {self.conf_dir}",
            f"  app:          {self.source.describe()}",
            f"  bind:         {', '.join(cfg.bind)}",
            f"  workers:      {cfg.workers} x {cfg.worker_class_str} ({cfg.worker_connections} connections each)",
            f"  log files:    {self.logs_to}",
        ]
        if (shown := self.app.describe()) is not None:
            lines.append(f"  app settings: {shown}")
        return "\n".join(lines)


def load_server_config(conf_dir: Path, app_spec: str | None = None) -> ServerConfig:
    """Read and check ``gunicorn.yaml``, ``logging.yaml`` and (optional) ``app.yaml``, creating missing log and
    runtime directories; raise with every problem found. ``app_spec`` overrides ``wsgi_app``.
    """
    checked = check_server_config(conf_dir, create_dirs=True, app_spec=app_spec)
    if isinstance(checked, list):
        raise ServerConfigError(checked)
    return checked


class ServerConfigError(ConfigError):
    """The problems of a config directory, one per line; ``traceback`` is the app's, when it cannot be loaded
    ("" otherwise): ``serve`` prints it on stderr, a refused HUP logs it as the line's ``exc_info``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.traceback = "\n".join(problem.traceback for problem in problems
                                   if isinstance(problem, LoadProblem) and problem.traceback)


def check_server_config(conf_dir: Path, create_dirs: bool = False,
                        app_spec: str | None = None) -> ServerConfig | list[str]:
    """The checked config, or one line per problem found across all three files and in loading the app.

    Without ``create_dirs`` nothing is written: missing directories are only checked to be creatable.
    ``app_spec`` overrides ``wsgi_app``; an app other than the demo is imported in a child process.
    """
    problems: list[str] = []
    settings = _collect(problems, lambda: _load_settings(conf_dir / GUNICORN_FILE, create_dirs))
    logging_file = _collect(problems, _logging_file)
    logging_config = logging_file and _collect(problems, lambda: check_logging_config(conf_dir / logging_file,
                                                                                     create_dirs))
    app = _collect(problems, lambda: load_app_config(conf_dir))
    if problems:
        return problems
    config = ServerConfig(conf_dir, settings, logging_config, app, AppSource.from_settings(settings, app_spec),
                          logging_file)
    if config.source.spec is not None:
        cfg = config.gunicorn_config()
        problem = import_problem(config.source, app, gevent=is_gevent_worker(cfg), timeout=max(cfg.timeout, 1))
        if problem:
            return [problem]
    return config


def _logging_file() -> str:
    """The logging file that ``TRACKLINE_LOG_TO`` names: ``files`` (the default) or ``stdout``."""
    log_to = os.environ.get("TRACKLINE_LOG_TO") or "files"
    if log_to not in LOG_TO:
        raise ConfigError(f"TRACKLINE_LOG_TO={log_to!r}: must be one of {', '.join(LOG_TO)}")
    return LOG_TO[log_to]


def _collect(problems: list[str], load: Callable[[], Any]) -> Any:
    try:
        return load()
    except ConfigError as exc:
        problems.extend(str(exc).split("\n"))
        return None


def _load_settings(path: Path, create_dirs: bool) -> dict[str, Any]:
    raw = read_yaml(path)
    trial = Config()
    problems = []
    for name, value in raw.items():
        if name in OWNED_SETTINGS:
            problems.append(f"{path}: {name!r} cannot be set here: {OWNED_SETTINGS[name]}")
        elif name not in trial.settings:
            problems.append(f"{path}: unknown gunicorn setting {name!r}")
        else:
            try:
                trial.set(name, value)
            except (TypeError, ValueError) as exc:
                problems.append(f"{path}: {name}: {_wrong_value(trial, name, value, exc)}")
            except GunicornConfigError as exc:  # chdir, user, group: gunicorn's validators check the system
                problems.append(f"{path}: {name}: {exc}")
    if raw.get("preload_app") is True:
        problems.append(f"{path}: preload_app: must be false: preloading imports the app in the master, before "
                        "gevent patches the workers, and a HUP would not load new code")
    problems.extend(f"{path}: {problem}" for problem in _resolve(trial, raw.keys()))
    for name in RUNTIME_FILES & raw.keys():
        try:
            writable_directory(Path(str(raw[name])).parent, f"{path}: {name}", create_dirs)
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("\n".join(problems))
    return raw


#: What a setting checked by this gunicorn validator takes, and the YAML types that are that.
_EXPECTED: dict[str, tuple[str, tuple[type, ...]]] = {
    "validate_pos_int": ("an integer", (int,)),
    "validate_bool": ("true or false", (bool,)),
    "validate_string": ("a string", (str,)),
    "validate_list_string": ("a list of strings", (list, str)),
    "validate_dict": ("a mapping", (dict,)),
}


def _wrong_value(cfg: Config, name: str, value: Any, exc: Exception) -> str:
    """Why gunicorn refused ``value`` for ``name``: what was expected when it has the wrong type (gunicorn says
    ``invalid literal for int() with base 0: 'thirty'``), else gunicorn's own reason."""
    validator = getattr(cfg.settings[name].validator, "__name__", "")
    expected, types = _EXPECTED.get(validator, ("", ()))
    if expected and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
        return f"expected {expected}, not {value!r}"
    return str(exc)


def _resolve(cfg: Config, names: Iterable[str]) -> list[str]:
    """Problems gunicorn finds only when it uses a setting: an unknown worker class, a bad address or one it
    cannot listen on, an unreadable TLS file, no workers, a control socket path too long to bind."""
    problems = []
    if "worker_class" in names:
        try:
            cfg.worker_class  # noqa: B018 - imports the class, as the master does at start and on HUP
        except Exception as exc:  # gunicorn raises RuntimeError, ImportError, ...
            reason = str(exc).strip().splitlines()[0].rstrip(": ")  # gunicorn appends a whole traceback
            problems.append(f"worker_class: cannot load {cfg.settings['worker_class'].get()!r}: {reason}")
    try:
        addresses = cfg.address  # gunicorn's default bind when gunicorn.yaml has none
    except Exception as exc:
        problems.append(f"bind: {exc}")
    else:
        problems.extend(f"bind: {problem}" for address in addresses if (problem := listen_problem(address)))
    for name in TLS_FILES:
        if (file := cfg.settings[name].get()) and (problem := _unreadable(file)):
            problems.append(f"{name}: cannot read {file}: {problem}")
    if cfg.workers < 1:
        problems.append(f"workers: must be at least 1, not {cfg.workers}")
    control_socket = os.fsencode(os.path.join(util.getcwd(), cfg.control_socket))  # as gunicorn makes it absolute
    if not cfg.control_socket_disable and len(control_socket) > MAX_UNIX_SOCKET_PATH:
        problems.append(f"control_socket: {os.fsdecode(control_socket)} is {len(control_socket)} bytes, more than "
                        f"a unix socket path may have ({MAX_UNIX_SOCKET_PATH}): set a shorter control_socket (the "
                        "shipped gunicorn.yaml: TRACKLINE_RUN_DIR) or control_socket_disable: true")
    return problems


#: gunicorn's TLS settings naming a file that the workers read when they wrap the listening socket.
TLS_FILES = ("certfile", "keyfile", "ca_certs")


def listen_problem(address: Any, in_use_ok: bool = True) -> str | None:
    """Why gunicorn could not listen on one of ``cfg.address``'s addresses, in the words ``check-config`` and
    ``serve`` both use; ``None`` if it could. A TCP address is resolved and bound for a moment to the port
    (``SO_REUSEADDR``, as gunicorn binds): a port out of range, a name that does not resolve, an address that is
    not this machine's, a port below 1024 without the privilege. The port being in use is a problem only with
    ``in_use_ok=False`` (``serve`` at start): a check or a HUP while trackline runs finds its own socket there.
    A unix socket's directory must exist and be writable. Nothing is checked for ``fd://`` or under systemd's
    socket activation (``LISTEN_FDS``)."""
    if os.environ.get("LISTEN_FDS") or isinstance(address, int):
        return None
    if isinstance(address, str):
        path = os.path.abspath(address)
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            return f"cannot listen on unix:{path}: directory {directory} does not exist"
        if not os.access(directory, os.W_OK | os.X_OK):
            return f"cannot listen on unix:{path}: cannot create a socket in {directory}: permission denied"
        if len(os.fsencode(path)) > MAX_UNIX_SOCKET_PATH:
            return (f"cannot listen on unix:{path}: the path is {len(os.fsencode(path))} bytes, more than a unix "
                    f"socket path may have ({MAX_UNIX_SOCKET_PATH})")
        return None
    host, port = address
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if not 0 <= port <= 65535:
        return f"cannot listen on {shown}: port {port} is out of range (1-65535, or 0 for any free port)"
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)[0]
    except OSError as exc:  # socket.gaierror
        return f"cannot listen on {shown}: {host!r} does not resolve: {exc.strerror or exc}"
    try:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(sockaddr)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE and in_use_ok:
            return None
        reason = exc.strerror or str(exc)
        if exc.errno == errno.EADDRNOTAVAIL:
            reason += f" ({sockaddr[0]} is not an address of this machine)"
        elif exc.errno == errno.EACCES and port < 1024:
            reason += " (a port below 1024 needs root or CAP_NET_BIND_SERVICE)"
        return f"cannot listen on {shown}: {reason}"
    return None


def _unreadable(file: str) -> str | None:
    """Why ``file`` cannot be opened for reading, or ``None``."""
    try:
        with open(file, "rb"):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)
