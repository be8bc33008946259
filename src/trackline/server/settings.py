"""Everything ``trackline serve`` reads from the config directory, loaded and checked as one unit."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gunicorn import util
from gunicorn.config import Config
from gunicorn.errors import ConfigError as GunicornConfigError

from trackline.appconfig import AppConfig, load_app_config
from trackline.config import GUNICORN_FILE, LOGGING_FILE, ConfigError, read_yaml, writable_directory
from trackline.logs.setup import check_logging_config, handler_files
from trackline.server.access import is_gevent_worker, use_app_config
from trackline.server.hooks import install_hooks
from trackline.server.loading import AppSource, import_problem

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
    def log_files(self) -> list[str]:
        """The files ``logging.yaml`` writes to."""
        return [str(file) for file in handler_files(self.logging, self.conf_dir / LOGGING_FILE)]

    def describe(self) -> str:
        """What ``trackline serve`` runs with this config (gunicorn's defaults filled in)."""
        cfg = self.gunicorn_config()
        lines = [
            f"config OK: {self.conf_dir}",
            f"  app:          {self.source.describe()}",
            f"  bind:         {', '.join(cfg.bind)}",
            f"  workers:      {cfg.workers} x {cfg.worker_class_str} ({cfg.worker_connections} connections each)",
            f"  log files:    {', '.join(self.log_files) or '(none)'}",
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
        raise ConfigError("\n".join(checked))
    return checked


def check_server_config(conf_dir: Path, create_dirs: bool = False,
                        app_spec: str | None = None) -> ServerConfig | list[str]:
    """The checked config, or one line per problem found across all three files and in loading the app.

    Without ``create_dirs`` nothing is written: missing directories are only checked to be creatable.
    ``app_spec`` overrides ``wsgi_app``; an app other than the demo is imported in a child process.
    """
    problems: list[str] = []
    settings = _collect(problems, lambda: _load_settings(conf_dir / GUNICORN_FILE, create_dirs))
    logging_config = _collect(problems, lambda: check_logging_config(conf_dir / LOGGING_FILE, create_dirs))
    app = _collect(problems, lambda: load_app_config(conf_dir))
    if problems:
        return problems
    config = ServerConfig(conf_dir, settings, logging_config, app, AppSource.from_settings(settings, app_spec))
    if config.source.spec is not None:
        cfg = config.gunicorn_config()
        problem = import_problem(config.source, app, gevent=is_gevent_worker(cfg), timeout=max(cfg.timeout, 1))
        if problem:
            return [problem]
    return config


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
    """Problems gunicorn finds only when it uses a setting: an unknown worker class, a bad address, no workers,
    a control socket path too long to bind."""
    problems = []
    if "worker_class" in names:
        try:
            cfg.worker_class  # noqa: B018 - imports the class, as the master does at start and on HUP
        except Exception as exc:  # gunicorn raises RuntimeError, ImportError, ...
            reason = str(exc).strip().splitlines()[0].rstrip(": ")  # gunicorn appends a whole traceback
            problems.append(f"worker_class: cannot load {cfg.settings['worker_class'].get()!r}: {reason}")
    if "bind" in names:
        try:
            cfg.address  # noqa: B018
        except Exception as exc:
            problems.append(f"bind: {exc}")
    if cfg.workers < 1:
        problems.append(f"workers: must be at least 1, not {cfg.workers}")
    control_socket = os.fsencode(os.path.join(util.getcwd(), cfg.control_socket))  # as gunicorn makes it absolute
    if not cfg.control_socket_disable and len(control_socket) > MAX_UNIX_SOCKET_PATH:
        problems.append(f"control_socket: {os.fsdecode(control_socket)} is {len(control_socket)} bytes, more than "
                        f"a unix socket path may have ({MAX_UNIX_SOCKET_PATH}): set a shorter control_socket (the "
                        "shipped gunicorn.yaml: TRACKLINE_RUN_DIR) or control_socket_disable: true")
    return problems
