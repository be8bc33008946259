"""The gunicorn Application that runs trackline from a config directory and survives bad reloads."""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from trackline.config import ConfigError
from trackline.server.settings import ServerConfig, load_server_config


class TracklineApplication(BaseApplication):
    """Gunicorn reads its settings from ``gunicorn.yaml`` and its logging from ``logging.yaml``.

    On HUP the master re-reads both; if either is broken it logs why and keeps serving with the old ones and
    the old workers (gunicorn's own reload would exit the master on a config error).
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        super().__init__(prog="trackline serve")

    def load_config(self) -> None:
        self.config.apply(self.cfg)

    def refresh(self) -> bool:
        """Re-read the config directory for a HUP; False (and logged) if it is broken."""
        try:
            self.config = load_server_config(self.config.conf_dir)
        except ConfigError as exc:
            logging.getLogger("gunicorn.error").error(
                "reload refused, still serving with the previous configuration: %s", str(exc).replace("\n", "; ")
            )
            return False
        return True

    def run(self) -> None:
        try:
            _RefusableReloadArbiter(self).run()
        except RuntimeError as exc:  # as BaseApplication.run
            print(f"\nError: {exc}\n", file=sys.stderr, flush=True)
            sys.exit(1)

    def load(self) -> Any:
        from trackline.app import create_app  # imported in the worker, after gevent has patched it

        return create_app(self.config.app)


class _RefusableReloadArbiter(Arbiter):
    """gunicorn's master, except that a HUP whose config is refused changes nothing: gunicorn's ``reload()``
    would go on to start new workers (on the old config) and stop every old one."""

    app: TracklineApplication

    def reload(self) -> None:
        if self.app.refresh():
            super().reload()


def serve(conf_dir: Path) -> None:
    """Run gunicorn in the foreground until it is stopped (``trackline serve``)."""
    config = load_server_config(conf_dir)
    application = TracklineApplication(config)
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
