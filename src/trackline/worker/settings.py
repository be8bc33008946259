"""``worker.yaml``: which Celery app ``trackline worker`` runs, on which broker, how, and how it logs."""

from __future__ import annotations

import pkgutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from trackline.appconfig import load_app_config
from trackline.config import APP_FILE, LOGGING_FILE, WORKER_FILE, ConfigError, read_yaml
from trackline.logs.setup import check_logging_config, destinations, used_handlers

POOLS = ("prefork", "threads", "solo")

DEFAULTS: dict[str, Any] = {
    "celery_app": "trackline.demo.tasks:app",
    "broker_url": "redis://127.0.0.1:6379/0",
    "result_backend": None,  # the broker URL
    "concurrency": 2,
    "pool": "prefork",
    "queues": ["celery"],
    "log_handlers": ["worker_file", "console"],
    "task_payloads": False,
}

#: How long check-config waits for the broker to accept a connection.
BROKER_PROBE_TIMEOUT = 1.0


@dataclass(frozen=True)
class WorkerConfig:
    """The checked contents of ``worker.yaml`` and the logging config the worker applies."""

    conf_dir: Path
    celery_app: str
    broker_url: str
    result_backend: str
    concurrency: int
    pool: str
    queues: list[str]
    logging: dict[str, Any]
    task_payloads: bool

    def describe(self) -> str:
        return (f"worker:       {self.celery_app} on {_without_password(self.broker_url)},"
                f" {self.concurrency} x {self.pool},"
                f" queues {', '.join(self.queues)}"
                f"{', task payloads logged (redacted)' if self.task_payloads else ''},"
                f" logging to {destinations(self.logging, self.conf_dir / LOGGING_FILE)}")


def load_worker_config(conf_dir: Path, create_dirs: bool = True) -> WorkerConfig:
    """Read and check ``worker.yaml`` and ``logging.yaml`` (with the worker's root handlers); raise on problems."""
    path = conf_dir / WORKER_FILE
    raw = read_yaml(path)
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(DEFAULTS)})")
    values = {**DEFAULTS, **raw}
    problems = []
    for key in ("celery_app", "broker_url"):
        if not isinstance(values[key], str) or not values[key]:
            problems.append(f"{path}: {key} must be a non-empty string")
    if not isinstance(values["celery_app"], str) or ":" not in values["celery_app"]:
        problems.append(f"{path}: celery_app must be 'module:name', not {values['celery_app']!r}")
    try:
        concurrency = int(values["concurrency"])
        if concurrency < 1:
            raise ValueError
    except (TypeError, ValueError):
        problems.append(f"{path}: concurrency must be a whole number of at least 1, not {values['concurrency']!r}")
        concurrency = 1
    if values["pool"] not in POOLS:
        problems.append(f"{path}: pool must be one of {', '.join(POOLS)}, not {values['pool']!r}")
    for key in ("queues", "log_handlers"):
        if not isinstance(values[key], list) or not values[key] or not all(isinstance(v, str) for v in values[key]):
            problems.append(f"{path}: {key} must be a non-empty list of names, not {values[key]!r}")
    task_payloads = _flag(values["task_payloads"])
    if task_payloads is None:
        problems.append(f"{path}: task_payloads must be true or false, not {values['task_payloads']!r}")
    if problems:
        raise ConfigError("\n".join(problems))
    logging_config = worker_logging(conf_dir / LOGGING_FILE, values["log_handlers"], create_dirs)
    return WorkerConfig(conf_dir, values["celery_app"], values["broker_url"],
                        values["result_backend"] or values["broker_url"], concurrency, values["pool"],
                        values["queues"], logging_config, bool(task_payloads))


def _flag(value: Any) -> bool | None:
    """A YAML boolean, or its word after ``${VAR}`` expansion (``true``, ``false``); ``None`` for anything else."""
    if isinstance(value, bool):
        return value
    return {"true": True, "false": False}.get(value.strip().lower()) if isinstance(value, str) else None


def worker_logging(path: Path, root_handlers: list[str], create_dirs: bool = True) -> dict[str, Any]:
    """``logging.yaml`` for the worker: root writes to ``root_handlers`` (worker.log) instead of app.log, and
    gunicorn's loggers and the handlers no remaining logger uses are left out (no access.log or error.log).
    """
    config = check_logging_config(path, create_dirs)
    missing = [name for name in root_handlers if name not in (config.get("handlers") or {})]
    if missing:
        raise ConfigError(f"{path}: no handler {', '.join(map(repr, missing))} for worker.yaml's log_handlers"
                          " (see docs/celery.md)")
    config["root"] = {**(config.get("root") or {}), "handlers": list(root_handlers)}
    config["loggers"] = {name: logger for name, logger in (config.get("loggers") or {}).items()
                         if name.split(".")[0] != "gunicorn"}
    used = used_handlers(config)
    config["handlers"] = {name: handler for name, handler in config["handlers"].items() if name in used}
    return config


def import_celery_app(spec: str, where: Path = Path(WORKER_FILE)) -> Any:
    """The Celery app named ``module:name`` (by ``where``), or a one-line error."""
    from celery import Celery

    try:
        app = pkgutil.resolve_name(spec)
    except Exception as exc:  # an import runs arbitrary module code
        raise ConfigError(f"{where}: celery_app {spec!r} cannot be imported: {type(exc).__name__}: {exc}"
                          ) from None
    if not isinstance(app, Celery):
        raise ConfigError(f"{where}: celery_app {spec!r} is a {type(app).__name__}, not a Celery app")
    return app


def broker_problem(url: str, timeout: float = BROKER_PROBE_TIMEOUT) -> str | None:
    """Why the broker at ``url`` does not accept a TCP connection now, or ``None`` if it does."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "amqp", "amqps", "pyamqp"):
        return None  # not a TCP broker we know how to probe (memory://, sqs://, ...)
    default_port = {"redis": 6379, "rediss": 6379}.get(parts.scheme, 5672)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def check_celery_config(conf_dir: Path) -> tuple[list[str], list[str]]:
    """``(problems, notes)`` for the Celery side of ``conf_dir``: ``worker.yaml`` and app.yaml's
    ``JOBS_BROKER_URL`` (app.yaml itself is checked with the server's config); both empty when it has neither.

    Problems: bad values, an app that cannot be imported, a logging.yaml without the worker's handlers,
    ``JOBS_BROKER_URL`` without Celery installed. Notes (not errors): what the worker would run, a broker that
    is not reachable yet, a worker.yaml not checked for want of Celery.
    """
    try:
        jobs_broker = load_app_config(conf_dir).jobs_broker_url
    except ConfigError:
        jobs_broker = None  # reported by the server's check
    has_worker = (conf_dir / WORKER_FILE).exists()
    try:
        import celery  # noqa: F401
    except ImportError:
        problems = [f"{conf_dir / APP_FILE}: JOBS_BROKER_URL needs Celery: pip install 'trackline[celery]'"
                    " (scripts/install --role worker installs it)"] if jobs_broker else []
        notes = [f"{WORKER_FILE}: not checked: Celery is not installed (pip install 'trackline[celery]');"
                 " fine on a host that runs no worker"] if has_worker else []
        return problems, notes
    notes = []
    brokers = {jobs_broker: APP_FILE} if jobs_broker else {}
    if has_worker:
        try:
            config = load_worker_config(conf_dir, create_dirs=False)
            import_celery_app(config.celery_app, conf_dir / WORKER_FILE)
        except ConfigError as exc:
            return str(exc).split("\n"), []
        notes.append(config.describe())
        brokers.setdefault(config.broker_url, WORKER_FILE)
    for url, where in brokers.items():
        problem = broker_problem(url)
        if problem is not None:
            notes.append(f"warning: {where}: broker {_without_password(url)} is not reachable now ({problem});"
                         " the worker waits for it, POST /api/jobs answers 503 until then")
    return [], notes


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()
