"""The gunicorn Application that runs trackline from a config directory and survives bad reloads."""

from __future__ import annotations

import logging
import logging.config
import os
import socket
import sys
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from trackline.config import ConfigError
from trackline.server.loading import load_app
from trackline.server.settings import ServerConfig, load_server_config


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
            self.log.error("reload refused, still serving with the previous configuration and workers: %s",
                           reason.replace("\n", "; "))
            return
        self.app.config = config
        super().reload()  # gunicorn's: re-applies the settings and logging, replaces the workers


def serve(conf_dir: Path, app_spec: str | None = None) -> None:
    """Run gunicorn in the foreground until it is stopped (``trackline serve [--app SPEC]``)."""
    config = load_server_config(conf_dir, app_spec)
    application = TracklineApplication(config, app_spec)
    _check_listen(application.cfg.address)
    print(f"trackline: serving on {', '.join(application.cfg.bind)}, logging to {', '.join(config.log_files)}",
          file=sys.stderr, flush=True)
    application.run()


def _check_listen(addresses: list[Any]) -> None:
    """Fail with one line if an address cannot be bound (gunicorn would retry five times, then exit)."""
    if os.environ.get("LISTEN_FDS"):
        return  # systemd passes the sockets in
    for address in addresses:
        if not isinstance(address, tuple):
            continue  # a unix socket path: gunicorn reports its own problems clearly
        host, port = address
        try:
            family, kind, proto, _, sockaddr = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)[0]
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(sockaddr)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConfigError(f"cannot listen on {host}:{port}: {reason} (change bind in gunicorn.yaml "
                              "or TRACKLINE_BIND)") from None
