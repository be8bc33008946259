"""``trackline worker``: a Celery worker for worker.yaml's app, logging through logging.yaml into worker.log.

Celery's own logging setup is skipped (a ``setup_logging`` receiver is connected), so the root logger is
trackline's dictConfig: JSON lines, no colours, nothing hijacked. TERM is Celery's warm shutdown (running
tasks finish; systemd's TimeoutStopSec bounds it). HUP re-applies logging.yaml instead of Celery's re-exec:
the main process at once, prefork children as each finishes its task (``pool.restart``). With
``NOTIFY_SOCKET`` set, READY=1 goes to systemd once the worker consumes.
"""

from __future__ import annotations

import logging
import logging.config
import os
import socket
from pathlib import Path
from typing import Any

from celery import platforms, signals

from trackline import redaction
from trackline.appconfig import load_app_config
from trackline.celery import instrument
from trackline.config import LOGGING_FILE, WORKER_FILE, ConfigError
from trackline.worker.settings import WorkerConfig, import_celery_app, load_worker_config

log = logging.getLogger("trackline.worker")


def run(conf_dir: Path) -> int:
    """Run the worker in the foreground until it is stopped; its exit code."""
    config = load_worker_config(conf_dir)
    _apply_logging(config)
    app = import_celery_app(config.celery_app, conf_dir / WORKER_FILE)
    app_config = load_app_config(conf_dir)
    redaction.configure(app_config.redactor)  # app.yaml's lists, for task lines as for requests' lines
    instrument(app, app_config.policy, config.task_payloads)  # tasks read and make IDs as app.yaml's requests do
    app.conf.update(
        broker_url=config.broker_url, result_backend=config.result_backend,
        worker_hijack_root_logger=False, worker_log_color=False, worker_redirect_stdouts=False,
        worker_pool_restarts=True, broker_connection_retry_on_startup=True,
    )
    signals.setup_logging.connect(_logging_is_ours, weak=False, dispatch_uid="trackline.worker.logging")
    signals.worker_ready.connect(_notify_ready, weak=False, dispatch_uid="trackline.worker.ready")

    class Worker(app.Worker):  # type: ignore[name-defined]
        def install_platform_tweaks(self, worker: Any) -> None:
            super().install_platform_tweaks(worker)
            platforms.signals["SIGHUP"] = lambda *_: _on_hup(worker, conf_dir)

    worker = Worker(concurrency=config.concurrency, pool_cls=config.pool, queues=config.queues,
                    quiet=True, no_color=True, without_mingle=True, without_gossip=True)
    log.info("worker starting", extra={"celery_app": config.celery_app, "pool": config.pool,
                                       "concurrency": config.concurrency, "queues": config.queues,
                                       "task_payloads": config.task_payloads})
    worker.start()
    return int(worker.exitcode or 0)


def _apply_logging(config: WorkerConfig) -> None:
    try:
        logging.config.dictConfig(config.logging)
    except Exception as exc:  # dictConfig raises whatever a handler class raises
        raise ConfigError(f"{config.conf_dir / LOGGING_FILE}: {exc}") from None


def _logging_is_ours(**_: Any) -> None:
    """``setup_logging`` receiver: its presence makes Celery leave logging alone (trackline applied it)."""


def _on_hup(worker: Any, conf_dir: Path) -> None:
    """HUP: re-apply logging.yaml on the worker's event loop (not inside the signal handler) when it has one."""
    hub = getattr(worker, "hub", None)
    if hub is not None:
        hub.call_soon(_reload_logging, worker, conf_dir)
    else:
        _reload_logging(worker, conf_dir)


def _reload_logging(worker: Any, conf_dir: Path) -> None:
    try:
        config = load_worker_config(conf_dir)
        _apply_logging(config)
    except ConfigError as exc:
        log.error("reload refused, still logging with the previous configuration: %s", str(exc).replace("\n", "; "))
        return
    log.info("logging.yaml re-applied")
    if config.pool == "prefork":
        worker.pool.restart()  # each child is replaced by a fork of this process once its task is done


def _notify_ready(**_: Any) -> None:
    """``worker_ready``: tell systemd (Type=notify) that the worker consumes."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.connect(address)
        notify.sendall(b"READY=1")
