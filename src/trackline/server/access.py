"""Gunicorn logger class whose access lines are JSON records with typed fields (no ``access_log_format``)."""

from __future__ import annotations

import datetime
import logging
from typing import Any

from gunicorn import glogging

from trackline.context import get_tracking_id
from trackline.server import inflight
from trackline.wsgi import TRACKING_ID_KEY


def _request_header(req: Any, name: str) -> str | None:
    for key, value in getattr(req, "headers", None) or ():
        if key.upper() == name:
            return value
    return None


def _sent(resp: Any) -> int:
    """Body bytes sent; for a request gunicorn answered itself, the length of its error text."""
    sent = getattr(resp, "sent", None)
    return sent if sent is not None else getattr(resp, "response_length", None) or 0


def access_fields(resp: Any, req: Any, environ: dict[str, Any], request_time: datetime.timedelta) -> dict[str, Any]:
    """The access-log fields of one request (also for requests gunicorn answered itself, e.g. 400; ``req`` is
    ``None`` and ``environ`` has only ``REMOTE_ADDR`` for one it could not parse)."""
    status = getattr(resp, "status_code", None) or int(str(resp.status).split(None, 1)[0])
    return {
        "tracking_id": environ.get(TRACKING_ID_KEY) or get_tracking_id(),  # the latter for a request gunicorn rejected
        "remote_addr": environ.get("REMOTE_ADDR"),
        "protocol": environ.get("SERVER_PROTOCOL"),
        "host": environ.get("HTTP_HOST") or _request_header(req, "HOST"),
        "request_method": environ.get("REQUEST_METHOD"),
        "request_path": environ.get("PATH_INFO", getattr(req, "path", None)),
        "query_string": environ.get("QUERY_STRING"),  # null for a request gunicorn could not parse
        "status_code": status,
        "response_length": _sent(resp),
        "referer": environ.get("HTTP_REFERER") or _request_header(req, "REFERER"),
        "user_agent": environ.get("HTTP_USER_AGENT") or _request_header(req, "USER-AGENT"),
        "request_time": request_time.total_seconds(),
    }


class JsonLogger(glogging.Logger):
    """``logger_class`` for trackline: one JSON access record per request, carrying the effective tracking ID.

    The ID is the one the app wrote into the WSGI environ (and into the ``X-Tracking-ID`` response header),
    so generated and replacement IDs are logged, not the raw request header.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # gevent gives each request greenlet a dummy thread the first time a record asks for it (about
        # 8 us a request in a worker) and its name, "Dummy-N", tells nothing: records skip it there.
        logging.logThreads = not is_gevent_worker(cfg)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: datetime.timedelta) -> None:
        log = self.access_log
        if not self.access_log_enabled or not log.isEnabledFor(logging.INFO):
            return
        completed = getattr(resp, "completed", True)
        if completed and environ.get(inflight.NEVER_COMPLETED_KEY):
            return  # its line, status 504, is out already (trackline.server.inflight)
        try:
            fields = access_fields(resp, req, environ, request_time)
            if not completed:
                fields["completed"] = False
            if inflight.is_slow(request_time):
                fields["slow"] = True
            # What log.info("%s %s %s", ..., extra=fields) does, minus its caller lookup (a stack walk per line)
            # and its check of each extra key against the record's attributes (these names never collide).
            record = log.makeRecord(log.name, logging.INFO, __file__, _LINE, "%s %s %s",
                                    (fields["request_method"] or "-", fields["request_path"] or "-",
                                     fields["status_code"]),
                                    None, "access")
            record.__dict__.update(fields)
            log.handle(record)
        except Exception:
            self.exception("could not write the access log line")


def is_gevent_worker(cfg: Any) -> bool:
    """Whether ``cfg``'s workers are gevent's (the app then loads after gevent's patching)."""
    from gunicorn.workers.ggevent import GeventWorker  # imports gevent, which trackline depends on

    return issubclass(cfg.worker_class, GeventWorker)


#: The source line access records name (``loc`` when a formatter shows it): the start of ``JsonLogger.access``.
_LINE = JsonLogger.access.__code__.co_firstlineno


def _from_callers_frame(name: str) -> Any:
    """gunicorn's ``Logger.<name>`` with ``loc``/``func`` naming gunicorn's caller, not this wrapper."""

    def method(self: JsonLogger, msg: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stacklevel", 2)
        getattr(self.error_log, name)(msg, *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    return method


for _name in ("critical", "error", "warning", "info", "debug", "exception"):
    setattr(JsonLogger, _name, _from_callers_frame(_name))
