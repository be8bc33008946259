"""The JSON line formatter that writes trackline's log contract (see README, "Log format").

Every request writes two lines through it, so it avoids per-line work python-json-logger repeats: a record
without a dict message, traceback or stack takes a short ``format``; the date-time and UTC offset of the
timestamp are rendered once per second; a record's extra attributes are found once per layout of its
attributes; and orjson encodes the line, with what it cannot write as the standard library's encoder would
handed to that encoder (docs/log-format.md, "Encoding"; docs/benchmarks.md).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import orjson
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonEncoder
from pythonjsonlogger.json import JsonFormatter as _PjlJsonFormatter

from trackline.logs import linecap, presets

Encode = Callable[[Any], str]

# Record attributes that are either rendered under a contract name or never shown.
_NOT_EXTRA = frozenset(RESERVED_ATTRS) | {"tracking_id", "taskName", "message"}
#: The layouts of record attributes whose extra names a formatter remembers (a call site's records share one).
_LAYOUTS = 256
#: Types the standard library's encoder writes as their base type, that orjson hands to ``default`` when
#: subclassed (a ``namedtuple``, a ``float`` subclass): such a line is the standard library's to write.
_WRITTEN_AS_BASE = (str, int, float, list, tuple, dict)
#: orjson hands datetimes and dataclasses to ``default``, as the standard library's encoder does.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
#: What ``ensure_ascii`` escapes that orjson writes as it is: DEL and every character past ASCII.
_UNESCAPED = re.compile("[\x7f-\U0010ffff]")


def _second_parts(second: int) -> tuple[str, str]:
    """The local date-time and the UTC offset of a timestamp in ``second``: the text around its milliseconds."""
    local = time.localtime(second)
    offset = local.tm_gmtoff
    hours, minutes = divmod(abs(offset) // 60, 60)
    return time.strftime("%Y-%m-%dT%H:%M:%S", local), f"{'-' if offset < 0 else '+'}{hours:02d}:{minutes:02d}"


def _escape(match: re.Match[str]) -> str:
    """A character as ``ensure_ascii`` writes it: ``\\uXXXX``, a surrogate pair beyond the BMP."""
    code = ord(match.group())
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 | code >> 10:04x}\\u{0xDC00 | code & 0x3FF:04x}"


def _null_constant(name: str) -> None:
    """``NaN``, ``Infinity`` or ``-Infinity`` read back as ``null``: what orjson writes for them."""


def _stdlib_encoder(encoder_class: type[json.JSONEncoder], default: Callable[[Any], Any] | None,
                    ensure_ascii: bool) -> Encode:
    """The standard library's encoder writing compact JSON as orjson does, a non-finite float as ``null``."""
    strict = encoder_class(default=default, ensure_ascii=ensure_ascii, separators=(",", ":"), allow_nan=False)
    lenient = encoder_class(default=default, ensure_ascii=ensure_ascii, separators=(",", ":"))

    def encode(value: Any) -> str:
        try:
            return strict.encode(value)
        except ValueError:  # NaN or an infinity (a circular value raises again below)
            return strict.encode(json.loads(lenient.encode(value), parse_constant=_null_constant))
    return encode


def _orjson_encoder(default: Callable[[Any], Any], ensure_ascii: bool, fallback: Encode) -> Encode:
    """orjson with python-json-logger's ``default``; ``fallback`` writes what orjson refuses (a key that is
    not a string, an integer beyond 64 bits, a lone surrogate) or would write otherwise."""
    def base_types_to_the_fallback(value: Any) -> Any:
        if isinstance(value, _WRITTEN_AS_BASE):
            raise TypeError("the standard library writes it as its base type")
        return default(value)

    dumps, error = orjson.dumps, orjson.JSONEncodeError

    def encode(value: Any) -> str:
        try:
            data = dumps(value, default=base_types_to_the_fallback, option=_ORJSON_OPTIONS)
        except error:
            return fallback(value)
        if ensure_ascii and (not data.isascii() or b"\x7f" in data):
            return _UNESCAPED.sub(_escape, data.decode())
        return data.decode()
    return encode


class _ExtraNames:
    """The names of a record's extra attributes (neither standard, nor rendered under a contract name, nor
    ``_private``) in the order they were set, found once per layout of the record's attributes."""

    def __init__(self, skip: set[str]) -> None:
        self._skip = skip
        self._known: dict[tuple[str, ...], tuple[str, ...]] = {}

    def __call__(self, attributes: dict[str, Any]) -> tuple[str, ...]:
        layout = tuple(attributes)
        names = self._known.get(layout)
        if names is None:
            extra = attributes.keys() - self._skip
            names = tuple(key for key in attributes if key in extra and not key.startswith("_"))
            if len(self._known) < _LAYOUTS:  # a bound for records whose extra names keep changing
                self._known[layout] = names
        return names


class JsonFormatter(_PjlJsonFormatter):
    """python-json-logger formatter emitting the contract fields first, then static, extra and exception fields.

    ``location: false`` drops ``loc``/``func`` (the access log has no useful source location).
    ``fields`` names the field preset (``trackline``, the default, or ``ecs``, ``gcp``, ``datadog``, ``otel``:
    ``trackline.logs.presets``); ``gcp_project`` is the Google Cloud project ID that ``fields: gcp`` needs.
    ``max_line_bytes`` caps a line (its newline included; default 1 MiB, the longest that reaches the log host
    whole): a longer one has its longest values cut with a marker, and what cannot be cut left out
    (``trackline.logs.linecap``); a shorter one is written as it is.
    Other keyword arguments are python-json-logger's (``static_fields``, ``prefix``, ``json_ensure_ascii``,
    ``json_default``, ...); a ``json_encoder``, ``json_serializer`` or ``json_indent`` of one's own, or a
    ``json_default``, has the standard library's encoder write every line (``_make_encoder``).
    """

    def __init__(self, *args: Any, location: bool = True, fields: str = "trackline", gcp_project: str | None = None,
                 max_line_bytes: int | str = linecap.DEFAULT_MAX_LINE_BYTES, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.location = location
        self._skip_fields |= _NOT_EXTRA
        self._extras = _ExtraNames(self._skip_fields)
        self._asctime = "asctime" in self._required_fields
        self._second: tuple[int, str, str] = (-1, "", "")
        self._encode = self._make_encoder()
        self.fields = fields
        preset = presets.build(fields, self, gcp_project)  # chosen once: the default keeps add_fields below
        if preset is not None:
            self.add_fields = preset  # type: ignore[method-assign,assignment]
        self.max_line_bytes = linecap.max_line_bytes(max_line_bytes)
        self._cap = linecap.LineCap(self.max_line_bytes, self._encode, self.json_ensure_ascii, self.add_fields)
        self._fits = self._cap.fits
        self._second = (-1, "", "")  # the cap's probe line rendered one: a line's own zone is read when it comes

    def _make_encoder(self) -> Encode:
        """The line's encoder, built once: orjson writing what python-json-logger's encoder would, compact, or
        with a ``json_default`` of one's own the standard library's (orjson writes UUIDs and enums without asking
        ``default``). A ``json_serializer``, ``json_encoder`` or ``json_indent`` of one's own is used as given."""
        if self.json_serializer is not json.dumps:
            return super().jsonify_log_record
        encoder_class = self.json_encoder or json.JSONEncoder
        if self.json_indent is not None or encoder_class not in (json.JSONEncoder, JsonEncoder):
            return encoder_class(default=self.json_default, indent=self.json_indent,
                                 ensure_ascii=self.json_ensure_ascii).encode
        fallback = _stdlib_encoder(encoder_class, self.json_default, self.json_ensure_ascii)
        if self.json_default is not None:
            return fallback
        return _orjson_encoder(JsonEncoder().default, self.json_ensure_ascii, fallback)

    def _timestamp(self, created: float) -> str:
        """``created`` as local ISO 8601 with milliseconds and offset (``2026-01-17T16:44:37.123+08:00``);
        the date-time and offset are rendered only when the second changes."""
        second, millis = divmod(int(created * 1000), 1000)
        cached = self._second
        if cached[0] != second:
            cached = self._second = (second, *_second_parts(second))
        return f"{cached[1]}.{millis:03d}{cached[2]}"

    def format(self, record: logging.LogRecord) -> str:
        """python-json-logger's ``format``, without its checks for a record with a ``str`` message and no
        traceback or stack (most records) when ``asctime`` is not asked for."""
        if type(record.msg) is not str or record.exc_info or record.exc_text or record.stack_info or self._asctime:
            return super().format(record)
        record.message = record.getMessage()
        log_data: dict[str, Any] = {}
        self.add_fields(log_data, record, {})
        return self.serialize_log_record(self.process_log_record(log_data))

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        log_data["@timestamp"] = self._timestamp(record.created)
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["tracking_id"] = getattr(record, "tracking_id", None)
        log_data["message"] = record.message
        log_data["pid"] = record.process
        if self.location:
            log_data["loc"] = f"{record.filename}:{record.lineno}"
            log_data["func"] = record.funcName
        if self.static_fields:
            log_data.update(self.static_fields)
        attributes = record.__dict__
        for key in self._extras(attributes):  # in the record's order, as they were passed
            log_data[key] = attributes[key]
        log_data.update(message_dict)

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        line = self._encode(log_data)
        return line if len(line) <= self._fits else self._cap.cut(log_data, line)
