"""Field presets: the same log lines under the names a log backend reads (``fields:`` on ``JsonFormatter``).

``trackline`` (the default) is the formatter's own ``add_fields``, untouched. Each other preset is a function
that builds, once, when the formatter is made, the ``add_fields`` that replaces it: no per-line choice.

Every preset keeps ``tracking_id`` at the top level under that name (``jq 'select(.tracking_id=="X")'`` and
``trackline trace`` work whatever the preset). The request fields (the access line's, an outgoing call's
``request_method``/``url``) and the trace fields are mapped to the backend's names wherever they appear; other
fields (``extra={...}``, a Celery task's, trackline's own such as ``rejected_tracking_id``) go where the backend
keeps custom fields: ECS ``labels``, OTel ``attributes``, GCP's and Datadog's top level. docs/log-format.md,
"Field presets", lists every name with the backend's spec.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

#: The presets ``fields:`` accepts, the default first.
PRESETS = ("trackline", "ecs", "gcp", "datadog", "otel")
#: The ECS version the ``ecs`` preset's lines conform to (``ecs.version``).
ECS_VERSION = "8.11.0"

AddFields = Callable[[dict[str, Any], logging.LogRecord, dict[str, Any]], None]
#: Puts one record attribute's value into a line (``root``), under the preset's name for it.
Setter = Callable[[dict[str, Any], Any, logging.LogRecord], None]


def build(fields: Any, formatter: Any, gcp_project: Any = None) -> AddFields | None:
    """The ``add_fields`` of preset ``fields`` for ``formatter`` (a ``JsonFormatter``), or ``None`` for
    ``trackline``, whose own method stays. A ``ValueError`` that says, in one line, what is wrong."""
    if fields not in PRESETS:
        raise ValueError(f"fields: {fields!r} is not a field preset; use one of {', '.join(PRESETS)}")
    if fields == "gcp":
        if not isinstance(gcp_project, str) or not gcp_project.strip() or "/" in gcp_project:
            raise ValueError("fields: gcp needs gcp_project: the Google Cloud project ID that "
                             "logging.googleapis.com/trace names (projects/PROJECT/traces/TRACE_ID)")
        return _gcp(formatter, gcp_project.strip())
    if gcp_project is not None:
        raise ValueError(f"gcp_project is read by fields: gcp only (this formatter has fields: {fields})")
    return None if fields == "trackline" else _BUILDERS[fields](formatter)


# -- shared pieces -------------------------------------------------------------------------------------------

def _extras(record: logging.LogRecord, extra_names: Callable[[dict[str, Any]], tuple[str, ...]]
            ) -> Iterator[tuple[str, Any]]:
    """The record's fields beyond the standard ones, in the order they were set (``extra_names``: the
    formatter's own rule, ``JsonFormatter._extras``)."""
    attributes = record.__dict__
    for key in extra_names(attributes):
        yield key, attributes[key]


def _put(root: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """``value`` at ``path`` in ``root``, making the objects on the way."""
    node = root
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[path[-1]] = value


def _at(path: tuple[str, ...], convert: Callable[[Any], Any] | None = None) -> Setter:
    """A setter putting a (converted) value at ``path``; a ``None`` value is left out."""
    def put(root: dict[str, Any], value: Any, record: logging.LogRecord) -> None:
        if value is not None:
            _put(root, path, convert(value) if convert else value)
    return put


def _nanoseconds(seconds: float) -> int:
    return round(seconds * 1_000_000_000)


def _http_version(protocol: str) -> str:
    """``HTTP/1.1`` -> ``1.1``."""
    return protocol.removeprefix("HTTP/")


def _host_and_port(value: str) -> tuple[str, int | None]:
    """A ``Host`` header's host and port: ``example.com:8000``, ``[::1]:8000``, ``example.com``."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host, port = value, ""
    return host, int(port) if port.isdigit() else None


def _host_setter(host_path: tuple[str, ...], port_path: tuple[str, ...]) -> Setter:
    def put(root: dict[str, Any], value: Any, record: logging.LogRecord) -> None:
        if value:
            host, port = _host_and_port(str(value))
            _put(root, host_path, host)
            if port is not None:
                _put(root, port_path, port)
    return put


def _target(record: logging.LogRecord) -> str | None:
    """The request target: the path, and ``?query`` when there is one."""
    path = getattr(record, "request_path", None)
    if path is None:
        return None
    query = getattr(record, "query_string", None)
    return f"{path}?{query}" if query else path


def _skip(root: dict[str, Any], value: Any, record: logging.LogRecord) -> None:
    """A field another field's setter already used."""


def _if_any(setter: Setter) -> Setter:
    """``setter`` for a value that is not empty (``""``, like ``None``, is left out: a query string)."""
    def put(root: dict[str, Any], value: Any, record: logging.LogRecord) -> None:
        if value:
            setter(root, value, record)
    return put


def _request_target(*path: str) -> Setter:
    """Puts the request target (path and query, ``_target``) at ``path`` when the record has a path."""
    def put(root: dict[str, Any], value: Any, record: logging.LogRecord) -> None:
        if value is not None:
            _put(root, path, _target(record))
    return put


def _both(*setters: Setter) -> Setter:
    def put(root: dict[str, Any], value: Any, record: logging.LogRecord) -> None:
        for setter in setters:
            setter(root, value, record)
    return put


def _flags(value: Any) -> int:
    """W3C trace flags (``"01"``) as a number."""
    return int(value, 16) if isinstance(value, str) else int(value)


def _error(record: logging.LogRecord, stack: str, kind: str, stack_key: str) -> dict[str, Any]:
    """A backend's ``error`` object for a record with a traceback: the exception's type (under ``kind``) and
    message, and the traceback (under ``stack_key``)."""
    error: dict[str, Any] = {}
    if exception := _exception(record):
        error[kind], error["message"] = exception
    error[stack_key] = stack
    return error


def _exception(record: logging.LogRecord) -> tuple[str, str] | None:
    """The exception's type (qualified, as ``module.Class`` outside builtins) and message, if the record has one."""
    info = record.exc_info
    if not info or info[0] is None:
        return None
    kind = info[0]
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    return name, str(info[1])


def _fresh(value: Any) -> Any:
    """A copy of a static value that a line may add to (an object), so no line changes the next one's."""
    if isinstance(value, dict):
        return {key: _fresh(item) for key, item in value.items()}
    return value


# -- ecs: Elastic Common Schema 8 (https://www.elastic.co/guide/en/ecs/current/ecs-field-reference.html) --------

_ECS_FIELDS: dict[str, Setter] = {
    "trace_id": _at(("trace", "id")),
    "span_id": _at(("span", "id")),
    "remote_addr": _at(("client", "ip")),
    "protocol": _at(("http", "version"), _http_version),
    "host": _host_setter(("url", "domain"), ("url", "port")),
    "request_method": _at(("http", "request", "method")),
    "request_path": _at(("url", "path")),
    "query_string": _if_any(_at(("url", "query"))),  # "" when none: ECS leaves the field out then
    "status_code": _at(("http", "response", "status_code")),
    "response_length": _at(("http", "response", "body", "bytes")),
    "referer": _at(("http", "request", "referrer")),
    "user_agent": _at(("user_agent", "original")),
    "request_time": _at(("event", "duration"), _nanoseconds),
    "url": _at(("url", "full")),  # an outgoing call's line
}
#: ECS fields at the top level whose names have no dot: a static field so named is placed as is.
_ECS_TOP_LEVEL = frozenset({"tags"})


def _label(key: str) -> str:
    """A ``labels`` key as the ecs-logging spec wants it: no ``.``, ``*`` or ``\\`` (each becomes ``_``)."""
    return key.replace(".", "_").replace("*", "_").replace("\\", "_")


def _ecs(formatter: Any) -> AddFields:
    stamp, location, extras = formatter._timestamp, formatter.location, formatter._extras
    static_paths: list[tuple[tuple[str, ...], Any]] = []
    static_labels: dict[str, Any] = {}
    for key, value in (formatter.static_fields or {}).items():
        if key == "labels" and isinstance(value, dict):
            static_labels.update((_label(str(name)), item) for name, item in value.items())
        elif "." in key or key in _ECS_TOP_LEVEL:  # an ECS name: service.name, service.environment, tags, ...
            static_paths.append((tuple(key.split(".")), value))
        else:  # a plain name (env: prod): a label
            static_labels[_label(key)] = value

    def add_fields(log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        # @timestamp, log.level (never nested), message, ecs.version first: the ecs-logging spec's order.
        log_data["@timestamp"] = stamp(record.created)
        log_data["log.level"] = record.levelname
        log_data["message"] = record.message
        log_data["ecs.version"] = ECS_VERSION
        log_data["tracking_id"] = getattr(record, "tracking_id", None)
        log: dict[str, Any] = {"logger": record.name}
        if location:
            log["origin"] = {"file": {"name": record.filename, "line": record.lineno}, "function": record.funcName}
        log_data["log"] = log
        log_data["process"] = {"pid": record.process}
        for path, value in static_paths:
            _put(log_data, path, _fresh(value))
        labels = dict(static_labels)
        for key, value in _extras(record, extras):
            setter = _ECS_FIELDS.get(key)
            if setter is None:
                labels[_label(key)] = value
            else:
                setter(log_data, value, record)
        for key, value in message_dict.items():
            if key == "exc_info":
                log_data["error"] = _error(record, value, "type", "stack_trace")
            else:
                labels[_label(key)] = value
        if labels:
            log_data["labels"] = labels

    return add_fields


# -- gcp: Cloud Logging's structured payload (https://cloud.google.com/logging/docs/structured-logging) --------

def _gcp_severity(levelno: int) -> str:
    """Cloud Logging's LogSeverity for a Python level (a level between two takes the lower name)."""
    for floor, name in ((50, "CRITICAL"), (40, "ERROR"), (30, "WARNING"), (20, "INFO"), (10, "DEBUG")):
        if levelno >= floor:
            return name
    return "DEFAULT"


def _duration(seconds: float) -> str:
    """A protobuf Duration in JSON: seconds with 0, 3, 6 or 9 decimals and ``s`` (``0.012s``, ``0.001681s``)."""
    nanos = round(seconds * 1_000_000_000)
    whole, fraction = divmod(nanos, 1_000_000_000)
    if fraction == 0:
        return f"{whole}s"
    if fraction % 1_000_000 == 0:
        return f"{whole}.{fraction // 1_000_000:03d}s"
    if fraction % 1000 == 0:
        return f"{whole}.{fraction // 1000:06d}s"
    return f"{whole}.{fraction:09d}s"


def _gcp_request(name: str, convert: Callable[[Any], Any] | None = None) -> Setter:
    return _at(("httpRequest", name), convert)


def _gcp(formatter: Any, project: str) -> AddFields:
    stamp, location, extras = formatter._timestamp, formatter.location, formatter._extras
    static = dict(formatter.static_fields or {})
    traces = f"projects/{project}/traces/"
    fields: dict[str, Setter] = {
        "trace_id": _at(("logging.googleapis.com/trace",), lambda trace_id: traces + trace_id),
        "span_id": _at(("logging.googleapis.com/spanId",)),
        "trace_flags": _at(("logging.googleapis.com/trace_sampled",), lambda flags: bool(_flags(flags) & 1)),
        "request_method": _gcp_request("requestMethod"),
        "request_path": _request_target("httpRequest", "requestUrl"),
        "query_string": _skip,  # in requestUrl
        "url": _gcp_request("requestUrl"),  # an outgoing call's line
        "status_code": _gcp_request("status"),
        "response_length": _gcp_request("responseSize", str),  # int64: a string in JSON
        "user_agent": _gcp_request("userAgent"),
        "remote_addr": _gcp_request("remoteIp"),
        "referer": _gcp_request("referer"),
        "protocol": _gcp_request("protocol"),
        "request_time": _gcp_request("latency", _duration),
    }

    def add_fields(log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        log_data["time"] = stamp(record.created)
        log_data["severity"] = _gcp_severity(record.levelno)
        log_data["message"] = record.message
        log_data["logger"] = record.name
        log_data["tracking_id"] = getattr(record, "tracking_id", None)
        log_data["pid"] = record.process
        if location:
            log_data["logging.googleapis.com/sourceLocation"] = {
                "file": record.filename, "line": str(record.lineno), "function": record.funcName}
        if static:
            log_data.update(static)
        for key, value in _extras(record, extras):
            setter = fields.get(key)
            if setter is None:
                log_data[key] = value
            else:
                setter(log_data, value, record)
        for key, value in message_dict.items():
            log_data["stack_trace" if key == "exc_info" else key] = value  # Error Reporting reads stack_trace

    return add_fields


# -- datadog: standard attributes (https://docs.datadoghq.com/standard-attributes/) ----------------------------

def _dd_id(hex_id: str) -> str:
    """Datadog's ID: the decimal of the lower 64 bits of a W3C trace or span ID."""
    return str(int(hex_id[-16:], 16))


def _datadog_trace(name: str) -> Setter:
    """The W3C ID under its own name (Datadog reads OpenTelemetry's ``trace_id``/``span_id`` too), and
    ``dd.<name>``, the Datadog tracers' decimal form."""
    def put(root: dict[str, Any], value: Any, record: logging.LogRecord) -> None:
        if value is not None:
            root[name] = value
            root[f"dd.{name}"] = _dd_id(value)
    return put


_DATADOG_FIELDS: dict[str, Setter] = {
    "trace_id": _datadog_trace("trace_id"),
    "span_id": _datadog_trace("span_id"),
    "remote_addr": _at(("network", "client", "ip")),
    "protocol": _at(("http", "version"), _http_version),
    "host": _host_setter(("http", "url_details", "host"), ("http", "url_details", "port")),
    "request_method": _at(("http", "method")),
    "request_path": _both(_request_target("http", "url"), _at(("http", "url_details", "path"))),
    "query_string": _skip,  # in http.url
    "url": _at(("http", "url")),  # an outgoing call's line
    "status_code": _at(("http", "status_code")),
    "response_length": _at(("network", "bytes_written")),
    "referer": _at(("http", "referer")),
    "user_agent": _at(("http", "useragent")),
    "request_time": _at(("duration",), _nanoseconds),
}


def _datadog(formatter: Any) -> AddFields:
    stamp, location, extras = formatter._timestamp, formatter.location, formatter._extras
    static = dict(formatter.static_fields or {})

    def add_fields(log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        log_data["timestamp"] = stamp(record.created)
        log_data["status"] = record.levelname.lower()
        log_data["message"] = record.message
        logger: dict[str, Any] = {"name": record.name}
        log_data["logger"] = logger
        log_data["tracking_id"] = getattr(record, "tracking_id", None)
        log_data["pid"] = record.process
        if location:
            logger["method_name"] = record.funcName
            log_data["loc"] = f"{record.filename}:{record.lineno}"
        if static:
            log_data.update(static)
        for key, value in _extras(record, extras):
            setter = _DATADOG_FIELDS.get(key)
            if setter is None:
                log_data[key] = value
            else:
                setter(log_data, value, record)
        for key, value in message_dict.items():
            if key == "exc_info":
                log_data["error"] = _error(record, value, "kind", "stack")
            else:
                log_data[key] = value

    return add_fields


# -- otel: the OpenTelemetry log data model (https://opentelemetry.io/docs/specs/otel/logs/data-model/) --------

def otel_severity_number(levelno: int) -> int:
    """SeverityNumber for a Python level as OpenTelemetry's Python SDK maps it (``std_to_otel``): DEBUG 5, INFO 9,
    WARNING 13, ERROR 17, CRITICAL 21, a level above one of these a step more per level (at most 3 steps), below
    DEBUG 0 (unspecified), above 53 24 (FATAL4)."""
    if levelno < 10:
        return 0
    band, step = divmod(levelno, 10)
    return min(24, 1 + 4 * band + min(step, 3))


def _attribute(name: str, convert: Callable[[Any], Any] | None = None) -> Setter:
    def put(root: dict[str, Any], value: Any, record: logging.LogRecord) -> None:
        if value is not None:
            root["attributes"][name] = convert(value) if convert else value
    return put


def _otel_host(root: dict[str, Any], value: Any, record: logging.LogRecord) -> None:
    if value:
        host, port = _host_and_port(str(value))
        root["attributes"]["server.address"] = host
        if port is not None:
            root["attributes"]["server.port"] = port


def _top(name: str) -> Setter:
    def put(root: dict[str, Any], value: Any, record: logging.LogRecord) -> None:
        root[name] = value
    return put


#: Semantic-convention attribute names (https://opentelemetry.io/docs/specs/semconv/http/http-spans/).
_OTEL_FIELDS: dict[str, Setter] = {
    "trace_id": _top("trace_id"),  # OTel's own names: https://opentelemetry.io/docs/specs/otel/compatibility/
    "span_id": _top("span_id"),    # logging_trace_context/ ("trace_flags" formatted as W3C's: "01")
    "trace_flags": _top("trace_flags"),
    "remote_addr": _attribute("client.address"),
    "protocol": _attribute("network.protocol.version", _http_version),
    "host": _otel_host,
    "request_method": _attribute("http.request.method"),
    "request_path": _attribute("url.path"),
    "query_string": _if_any(_attribute("url.query")),
    "status_code": _attribute("http.response.status_code"),
    "response_length": _attribute("http.response.body.size"),
    "referer": _attribute("http.request.header.referer", lambda value: [value]),  # header values: string[]
    "user_agent": _attribute("user_agent.original"),
    "request_time": _attribute("http.server.request.duration"),  # seconds, as the semconv metric of that name
    "url": _attribute("url.full"),  # an outgoing call's line
}


def _otel(formatter: Any) -> AddFields:
    stamp, location, extras = formatter._timestamp, formatter.location, formatter._extras
    static = dict(formatter.static_fields or {})

    def add_fields(log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        log_data["timestamp"] = stamp(record.created)
        log_data["severity_text"] = record.levelname
        log_data["severity_number"] = otel_severity_number(record.levelno)
        log_data["body"] = record.message
        log_data["tracking_id"] = getattr(record, "tracking_id", None)
        attributes: dict[str, Any] = {}
        if location:
            attributes["code.file.path"] = record.pathname
            attributes["code.line.number"] = record.lineno
            attributes["code.function.name"] = record.funcName
        log_data["attributes"] = attributes
        for key, value in _extras(record, extras):
            setter = _OTEL_FIELDS.get(key)
            if setter is None:
                attributes[key] = value
            else:
                setter(log_data, value, record)
        log_data["attributes"] = log_data.pop("attributes")  # after the trace fields, in the data model's order
        for key, value in message_dict.items():
            if key == "exc_info":
                if exception := _exception(record):
                    attributes["exception.type"], attributes["exception.message"] = exception
                attributes["exception.stacktrace"] = value
            else:
                attributes[key] = value
        log_data["resource"] = {"attributes": {**static, "process.pid": record.process}}
        log_data["instrumentation_scope"] = {"name": record.name}

    return add_fields


_BUILDERS: dict[str, Callable[[Any], AddFields]] = {"ecs": _ecs, "datadog": _datadog, "otel": _otel}
