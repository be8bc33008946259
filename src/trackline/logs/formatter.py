"""The JSON line formatter that writes trackline's log contract (see README, "Log format").

Every request writes two lines through it, so it avoids per-line work python-json-logger repeats: the
date-time and UTC offset of the timestamp are rendered once per second, the JSON encoder is built once, and a
record's extra attributes are looked for only when a set difference says it has some (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _PjlJsonFormatter

from trackline.logs import linecap, presets

# Record attributes that are either rendered under a contract name or never shown.
_NOT_EXTRA = frozenset(RESERVED_ATTRS) | {"tracking_id", "taskName", "message"}


def _second_parts(second: int) -> tuple[str, str]:
    """The local date-time and the UTC offset of a timestamp in ``second``: the text around its milliseconds."""
    local = time.localtime(second)
    offset = local.tm_gmtoff
    hours, minutes = divmod(abs(offset) // 60, 60)
    return time.strftime("%Y-%m-%dT%H:%M:%S", local), f"{'-' if offset < 0 else '+'}{hours:02d}:{minutes:02d}"


class JsonFormatter(_PjlJsonFormatter):
    """python-json-logger formatter emitting the contract fields first, then static, extra and exception fields.

    ``location: false`` drops ``loc``/``func`` (the access log has no useful source location).
    ``fields`` names the field preset (``trackline``, the default, or ``ecs``, ``gcp``, ``datadog``, ``otel``:
    ``trackline.logs.presets``); ``gcp_project`` is the Google Cloud project ID that ``fields: gcp`` needs.
    ``max_line_bytes`` caps a line (its newline included; default 1 MiB, the longest that reaches the log host
    whole): a longer one has its longest values cut with a marker, and what cannot be cut left out
    (``trackline.logs.linecap``); a shorter one is written as it is.
    Other keyword arguments are python-json-logger's (``static_fields``, ``json_ensure_ascii``, ...).
    """

    def __init__(self, *args: Any, location: bool = True, fields: str = "trackline", gcp_project: str | None = None,
                 max_line_bytes: int | str = linecap.DEFAULT_MAX_LINE_BYTES, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.location = location
        self._skip_fields |= _NOT_EXTRA
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

    def _make_encoder(self) -> Callable[[dict[str, Any]], str]:
        """``json.dumps`` with this formatter's options, its encoder built once instead of once per line."""
        if self.json_serializer is not json.dumps:
            return super().jsonify_log_record
        encoder_class = self.json_encoder or json.JSONEncoder
        return encoder_class(default=self.json_default, indent=self.json_indent,
                             ensure_ascii=self.json_ensure_ascii).encode

    def _timestamp(self, created: float) -> str:
        """``created`` as local ISO 8601 with milliseconds and offset (``2026-01-17T16:44:37.123+08:00``);
        the date-time and offset are rendered only when the second changes."""
        second, millis = divmod(int(created * 1000), 1000)
        cached = self._second
        if cached[0] != second:
            cached = self._second = (second, *_second_parts(second))
        return f"{cached[1]}.{millis:03d}{cached[2]}"

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
        extra = attributes.keys() - self._skip_fields
        if extra:  # in the record's order, as they were passed
            for key, value in attributes.items():
                if key in extra and not key.startswith("_"):
                    log_data[key] = value
        log_data.update(message_dict)

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        line = self._encode(log_data)
        return line if len(line) <= self._fits else self._cap.cut(log_data, line)
