"""Gunicorn logger class whose access lines are JSON records with typed fields (no ``access_log_format``)."""

from __future__ import annotations

import datetime
import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gunicorn import glogging

from trackline import redaction
from trackline.context import get_tracking_id
from trackline.redaction import Redactor
from trackline.server import inflight
from trackline.wsgi import TRACKING_ID_KEY

if TYPE_CHECKING:
    from trackline.appconfig import AppConfig

#: The attribute of gunicorn's ``Config`` that hands app.yaml (an ``AppConfig``) to the logger's ``setup``, which
#: gunicorn calls in the master at start and at each HUP, before it forks the workers (``ServerConfig.apply``).
APP_CONFIG = "trackline_app_config"


def _request_header(req: Any, name: str) -> str | None:
    for key, value in getattr(req, "headers", None) or ():
        if key.upper() == name:
            return value
    return None


def _sent(resp: Any) -> int:
    """Body bytes sent; for a request gunicorn answered itself, the length of its error text."""
    sent = getattr(resp, "sent", None)
    return sent if sent is not None else getattr(resp, "response_length", None) or 0


def _status(resp: Any) -> int:
    return getattr(resp, "status_code", None) or int(str(resp.status).split(None, 1)[0])


def access_fields(resp: Any, req: Any, environ: dict[str, Any], request_time: datetime.timedelta,
                  redactor: Redactor | None = None) -> dict[str, Any]:
    """The access-log fields of one request (also for requests gunicorn answered itself, e.g. 400; ``req`` is
    ``None`` and ``environ`` has only ``REMOTE_ADDR`` for one it could not parse), the values of listed query
    parameters redacted (``redactor``, else the process's) in the query, the path (a decoded ``%3F``) and the
    referer."""
    status = _status(resp)
    redact = redactor or redaction.active()
    path = environ.get("PATH_INFO", getattr(req, "path", None))
    query = environ.get("QUERY_STRING")
    host, referer, user_agent = environ.get("HTTP_HOST"), environ.get("HTTP_REFERER"), environ.get("HTTP_USER_AGENT")
    if req is not None and "wsgi.url_scheme" not in environ:  # gunicorn's own answer: its headers are on req only
        host, referer, user_agent = (_request_header(req, name) for name in ("HOST", "REFERER", "USER-AGENT"))
    return {
        "tracking_id": environ.get(TRACKING_ID_KEY) or get_tracking_id(),  # the latter for a request gunicorn rejected
        "remote_addr": environ.get("REMOTE_ADDR"),
        "protocol": environ.get("SERVER_PROTOCOL"),
        "host": host,
        "request_method": environ.get("REQUEST_METHOD"),
        "request_path": path and redact.url(path),
        "query_string": query and redact.query(query),  # null for a request gunicorn could not parse
        "status_code": status,
        "response_length": _sent(resp),
        "referer": referer and redact.url(referer),
        "user_agent": user_agent,
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
        app = getattr(cfg, APP_CONFIG, None)  # None: not served from a config directory (a test's own Config)
        self.redactor = app.redactor if app is not None else redaction.active()
        redaction.configure(self.redactor)  # for every other line too (TrackingIdFilter), in each worker forked
        self.sample = AccessSample(app.access_sample if app is not None else {})

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: datetime.timedelta) -> None:
        log = self.access_log
        if not self.access_log_enabled or not log.isEnabledFor(logging.INFO):
            return
        completed = getattr(resp, "completed", True)
        if completed and environ.get(inflight.NEVER_COMPLETED_KEY):
            return  # its line, status 504, is out already (trackline.server.inflight)
        try:
            if self.sample.paths and not self.sample.keeps(environ.get("PATH_INFO"), resp):
                return
            fields = access_fields(resp, req, environ, request_time, self.redactor)
            if not completed:
                fields["completed"] = False
            if inflight.is_slow(request_time):
                fields["slow"] = True
            log.handle(_access_record(log, (fields["request_method"] or "-", fields["request_path"] or "-",
                                            fields["status_code"]), fields))
        except Exception:
            self.exception("could not write the access log line")


def use_app_config(cfg: Any, app: AppConfig) -> None:
    """Hand ``app``'s redaction lists and access sample to the ``JsonLogger`` that gunicorn makes from ``cfg``."""
    setattr(cfg, APP_CONFIG, app)


class AccessSample:
    """app.yaml's ``TRACKLINE_ACCESS_SAMPLE``: of each listed path's 2xx answers, the access line of 1 in N is kept
    (the first, the N+1th, ... counted in each worker; 0 keeps none). Other statuses and paths are always kept."""

    __slots__ = ("_seen", "paths")

    def __init__(self, paths: Mapping[str, int]) -> None:
        self.paths = dict(paths)
        self._seen = dict.fromkeys(self.paths, 0)

    def keeps(self, path: Any, resp: Any) -> bool:
        every = self.paths.get(path)
        if every is None or not 200 <= _status(resp) < 300:
            return True
        if every == 0:
            return False
        seen = self._seen[path]
        self._seen[path] = seen + 1
        return seen % every == 0


def is_gevent_worker(cfg: Any) -> bool:
    """Whether ``cfg``'s workers are gevent's (the app then loads after gevent's patching)."""
    from gunicorn.workers.ggevent import GeventWorker  # imports gevent, which trackline depends on

    return issubclass(cfg.worker_class, GeventWorker)


#: The source line access records name (``loc`` when a formatter shows it): the start of ``JsonLogger.access``.
_LINE = JsonLogger.access.__code__.co_firstlineno

#: Per logger name, the attributes of this process's first access record: the ones every access record shares.
_prototypes: dict[str, dict[str, Any]] = {}
os.register_at_fork(after_in_child=_prototypes.clear)  # a worker's records carry its own pid


def _access_record(log: logging.Logger, args: tuple[Any, ...], fields: dict[str, Any]) -> logging.LogRecord:
    """What ``log.info("%s %s %s", *args, extra=fields)`` makes, minus its caller lookup (a stack walk per line),
    its check of each extra key against the record's attributes (these names never collide) and the generic
    ``LogRecord.__init__``: a copy of the process's first record with this one's time, arguments and fields.
    An app's own record factory (``logging.setLogRecordFactory``: OpenTelemetry's logging instrumentation) still
    makes every record."""
    default_factory = logging.getLogRecordFactory() is logging.LogRecord
    prototype = _prototypes.get(log.name) if default_factory else None
    if prototype is None:
        record = log.makeRecord(log.name, logging.INFO, __file__, _LINE, "%s %s %s", args, None, "access")
        if default_factory:
            _prototypes[log.name] = dict(record.__dict__)
        record.__dict__.update(fields)
        return record
    record = object.__new__(logging.LogRecord)
    created = time.time()
    record.__dict__ = {**prototype, "args": args, "created": created, "msecs": (created - int(created)) * 1000 // 1,
                       "relativeCreated": prototype["relativeCreated"] + (created - prototype["created"]) * 1000,
                       **fields}
    return record


def _from_callers_frame(name: str, level: int) -> Any:
    """gunicorn's ``Logger.<name>`` with ``loc``/``func`` naming gunicorn's caller, not this wrapper; a call below
    the error log's level returns at once (gunicorn's ``pre_request`` hook calls ``debug`` for every request)."""

    def method(self: JsonLogger, msg: Any, *args: Any, **kwargs: Any) -> None:
        if self.error_log.isEnabledFor(level):
            kwargs.setdefault("stacklevel", 2)
            getattr(self.error_log, name)(msg, *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    return method


for _name, _level in (("critical", logging.CRITICAL), ("error", logging.ERROR), ("warning", logging.WARNING),
                      ("info", logging.INFO), ("debug", logging.DEBUG), ("exception", logging.ERROR)):
    setattr(JsonLogger, _name, _from_callers_frame(_name, _level))
