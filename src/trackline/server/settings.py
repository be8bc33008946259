"""Everything ``trackline serve`` reads from the config directory, loaded and checked as one unit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gunicorn.config import Config

from trackline.config import ConfigError, read_yaml
from trackline.logs import load_logging_config, validate_logging_config
from trackline.policy import DEFAULTS, TrackingPolicy

GUNICORN_FILE = "gunicorn.yaml"
APP_FILE = "app.yaml"
LOGGING_FILE = "logging.yaml"

LOGGER_CLASS = "trackline.server.access.JsonLogger"

#: Gunicorn settings that trackline owns, with where to make that change instead.
OWNED_SETTINGS = {
    "wsgi_app": "trackline serves its own app",
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

#: Settings naming a file whose directory trackline creates if missing (like the log directory).
RUNTIME_FILES = frozenset({"pidfile", "control_socket"})

#: Flask config keys app.yaml may set: the tracking-ID policy, the request size limit, the demo's downstream.
APP_KEYS = frozenset(DEFAULTS) | {"MAX_CONTENT_LENGTH", "DOWNSTREAM_URL"}


@dataclass(frozen=True)
class ServerConfig:
    """The checked contents of a config directory."""

    conf_dir: Path
    settings: dict[str, Any]
    logging: dict[str, Any]
    app: dict[str, Any]

    def apply(self, cfg: Config) -> None:
        """Put these settings, the logging dictConfig and trackline's logger class into gunicorn's ``cfg``."""
        for name, value in self.settings.items():
            cfg.set(name, value)
        cfg.set("logconfig_dict", self.logging)
        cfg.set("logger_class", LOGGER_CLASS)


def load_server_config(conf_dir: Path) -> ServerConfig:
    """Read and check ``gunicorn.yaml``, ``logging.yaml`` and (optional) ``app.yaml``; raise on the first bad file.

    Use ``check_server_config`` to collect every problem instead.
    """
    problems = check_server_config(conf_dir)
    if isinstance(problems, list):
        raise ConfigError("; ".join(problems))
    return problems


def check_server_config(conf_dir: Path) -> ServerConfig | list[str]:
    """The checked config, or one line per problem found across all three files."""
    problems: list[str] = []
    settings = _collect(problems, _load_settings, conf_dir / GUNICORN_FILE)
    logging_config = _collect(problems, _load_logging, conf_dir / LOGGING_FILE)
    app = _collect(problems, _load_app, conf_dir / APP_FILE)
    if problems:
        return problems
    return ServerConfig(conf_dir, settings, logging_config, app)


def _collect(problems: list[str], load: Any, path: Path) -> Any:
    try:
        return load(path)
    except ConfigError as exc:
        problems.extend(str(exc).split("\n"))
        return None


def _load_settings(path: Path) -> dict[str, Any]:
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
                problems.append(f"{path}: {name}: {exc}")
    for name in RUNTIME_FILES & raw.keys():
        _make_parent(Path(str(raw[name])), f"{path}: {name}", problems)
    if problems:
        raise ConfigError("\n".join(problems))
    return raw


def _make_parent(file: Path, where: str, problems: list[str]) -> None:
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problems.append(f"{where}: cannot create directory {file.parent}: {exc.strerror or exc}")


def _load_logging(path: Path) -> dict[str, Any]:
    config = load_logging_config(path)
    validate_logging_config(config, path)
    return config


def _load_app(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    raw = read_yaml(path)
    unknown = sorted(set(raw) - APP_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(APP_KEYS))})")
    try:
        TrackingPolicy.from_config({**DEFAULTS, **raw})
    except Exception as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return raw
