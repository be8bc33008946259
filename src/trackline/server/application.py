"""The gunicorn Application that runs trackline from a config directory and survives bad reloads."""

from __future__ import annotations

import logging
import logging.config
import sys
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from trackline.config import ConfigError
from trackline.server.loading import load_app
from trackline.server.settings import ServerConfig, ServerConfigError, listen_problem, load_server_config


class TracklineApplication(BaseApplication):
    """Gunicorn reads its settings from ``gunicorn.yaml`` and its logging from ``logging.yaml``.

    On HUP the master re-reads them and imports the app in a child process; if a file is broken or the app's
    code cannot be loaded it logs why and keeps serving with the old workers (gunicorn's own reload would exit
    the master on a config error, and its new workers would fail to boot).
    """

    def __init__(self, config: ServerConfig, app_spec: str | None = None) -> None:
        self.config = config
        self.app_spec = app_spec  # ``trackline serve --app``: kept across reloads
        super().__init__(prog="trackline serve")

    def load_config(self) -> None:
        self.config.apply(self.cfg)

    def load(self) -> Any:
        """The app, loaded in the worker after gevent has patched it. An app that configures logging itself
        while it loads (``dictConfig``, ``basicConfig(force=True)``) would take trackline's files and fields
        away: logging.yaml is applied again, with a warning."""
        before = _logging_state()
        app = load_app(self.config.source, self.config.app)
        if _logging_state() != before:
            logging.config.dictConfig(self.config.logging)
            logging.getLogger("gunicorn.error").warning(
                "the app changed the logging configuration while it loaded; logging.yaml is applied again")
        return app

    def run(self) -> None:
        try:
            _Arbiter(self).run()
        except RuntimeError as exc:  # as BaseApplication.run reports gunicorn's start-up errors
            print(f"\nError: {exc}\n", file=sys.stderr, flush=True)
            sys.exit(1)


def _logging_state() -> list[tuple[Any, ...]]:
    """What an app's own logging setup would change: the root's and gunicorn's loggers' handlers and switches."""
    loggers = [logging.getLogger(name) for name in ("", "gunicorn.error", "gunicorn.access")]
    return [(tuple(logger.handlers), logger.level, logger.disabled, logger.propagate) for logger in loggers]


class _Arbiter(Arbiter):
    """gunicorn's master, whose HUP first checks the new config and app: a refused reload keeps the workers."""

    app: TracklineApplication

    def reload(self) -> None:
        try:
            config = load_server_config(self.app.config.conf_dir, self.app.app_spec)
        except Exception as exc:  # a ConfigError, or anything else: a HUP must never take the master down
            reason = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
            _log_refusal(f"reload refused, still serving with the previous configuration and workers: "
                         f"{reason.replace(chr(10), '; ')}", exc)
            return
        self.app.config = config
        super().reload()  # gunicorn's: re-applies the settings and logging, replaces the workers


def _log_refusal(message: str, exc: Exception) -> None:
    """The refused HUP's ERROR line on ``gunicorn.error``, with a traceback as its ``exc_info``: the app's, from
    the import check's child, when the app cannot be loaded; this one's when the check itself failed."""
    error_log = logging.getLogger("gunicorn.error")
    if not error_log.isEnabledFor(logging.ERROR):
        return
    child = exc.traceback if isinstance(exc, ServerConfigError) else ""
    exc_info = None if child or isinstance(exc, ConfigError) else (type(exc), exc, exc.__traceback__)
    record = error_log.makeRecord(error_log.name, logging.ERROR, __file__, _Arbiter.reload.__code__.co_firstlineno,
                                  message, (), exc_info, "reload")
    if child:
        record.exc_text = child  # formatted in another process: the formatter writes it as exc_info as it is
    error_log.handle(record)


def serve(conf_dir: Path, app_spec: str | None = None) -> None:
    """Run gunicorn in the foreground until it is stopped (``trackline serve [--app SPEC]``)."""
    try:
        config = load_server_config(conf_dir, app_spec)
    except ServerConfigError as exc:
        if exc.traceback:  # the app's, on stderr (the journal) above the one line that says why
            print(exc.traceback, file=sys.stderr, flush=True)
        raise
    application = TracklineApplication(config, app_spec)
    _check_listen(application.cfg.address)
    print(f"trackline: serving on {', '.join(application.cfg.bind)}, logging to {config.logs_to}",
          file=sys.stderr, flush=True)
    application.run()


def _check_listen(addresses: list[Any]) -> None:
    """Fail with one line if an address cannot be bound now (gunicorn would retry five times, then exit):
    the problems ``check-config`` finds were found when the config was loaded; here the port may be in use."""
    for address in addresses:
        if problem := listen_problem(address, in_use_ok=False):
            raise ConfigError(f"{problem} (change bind in gunicorn.yaml or TRACKLINE_BIND)")
