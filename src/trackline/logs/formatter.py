"""The JSON line formatter that writes trackline's log contract (see README, "Log format")."""

from __future__ import annotations

import logging
import time
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _PjlJsonFormatter

# Record attributes that are either rendered under a contract name or never shown.
_NOT_EXTRA = frozenset(RESERVED_ATTRS) | {"tracking_id", "taskName", "message"}


def iso_timestamp(created: float) -> str:
    """``created`` as local ISO 8601 with milliseconds and UTC offset: ``2026-01-17T16:44:37.123+08:00``."""
    local = time.localtime(created)
    offset = local.tm_gmtoff
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset) // 60, 60)
    millis = int(created * 1000) % 1000
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', local)}.{millis:03d}{sign}{hours:02d}:{minutes:02d}"


class JsonFormatter(_PjlJsonFormatter):
    """python-json-logger formatter emitting the contract fields first, then static, extra and exception fields.

    ``location: false`` drops ``loc``/``func`` (the access log has no useful source location).
    Other keyword arguments are python-json-logger's (``static_fields``, ``json_ensure_ascii``, ...).
    """

    def __init__(self, *args: Any, location: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.location = location
        self._skip_fields |= _NOT_EXTRA

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        log_data["@timestamp"] = iso_timestamp(record.created)
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["tracking_id"] = getattr(record, "tracking_id", None)
        log_data["message"] = record.message
        log_data["pid"] = record.process
        if self.location:
            log_data["loc"] = f"{record.filename}:{record.lineno}"
            log_data["func"] = record.funcName
        log_data.update(self.static_fields)
        for key, value in record.__dict__.items():
            if key not in self._skip_fields and not key.startswith("_"):
                log_data[key] = value
        log_data.update(message_dict)
