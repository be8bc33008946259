"""The line cap: no JSON line longer than the shipping path carries (``max_line_bytes`` on ``JsonFormatter``).

A line of up to ``max_line_bytes`` bytes (UTF-8, its newline included) is written as it is: the formatter checks
one length per line. A longer one is cut here, in any preset: its longest string values (a message, a field, a
traceback) are cut to one common length, each ending in ``...[truncated N of M bytes]`` (N bytes of the value's
M, in UTF-8), and the line gains ``"truncated": true`` and ``"original_bytes"`` at its top level. The fields
that tie a line to its request and its source stay whole: whatever path the preset gives the timestamp, level,
logger, tracking ID, trace and task fields (found once per formatter from a probe line, ``identity_paths``).
When the strings alone cannot make room (a huge list of numbers), the largest objects and lists holding none of
those are replaced whole by the marker, largest first, until they can. The reference: docs/log-format.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

#: The default cap: 1 MiB, the longest line the log host accepts (rsyslog's maxMessageSize in rsyslog/).
DEFAULT_MAX_LINE_BYTES = 1_048_576
#: The smallest cap accepted: room for a line's identity fields and a cut message.
MIN_MAX_LINE_BYTES = 4096
#: An identity field longer than this (JSON-encoded) is no ID, timestamp or logger name: it may be cut too.
_IDENTITY_MAX = 256
#: The longest marker (``...[truncated N of M bytes]`` with 12-digit numbers), as the room one cut value takes.
_MARKER_ROOM = len("...[truncated 999999999999 of 999999999999 bytes]")
#: The probe line's message: the path where a preset puts it is not an identity path.
_PROBE_MESSAGE = "\x00trackline probe message"

Encode = Callable[[Any], str]
Path = tuple[Any, ...]
_SCALARS = (str, int, float, bool, type(None))
#: What a cut line gains at its top level.
_FLAGS = frozenset({("truncated",), ("original_bytes",)})


def max_line_bytes(value: Any) -> int:
    """``max_line_bytes`` from logging.yaml (a whole number, or its digits after ``${VAR}`` expansion)."""
    number = value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    if number is None or number < MIN_MAX_LINE_BYTES:
        raise ValueError(f"max_line_bytes must be a whole number of bytes, at least {MIN_MAX_LINE_BYTES}"
                         f" (default {DEFAULT_MAX_LINE_BYTES}, the log host's limit), not {value!r}")
    return number


def identity_paths(add_fields: Callable[[dict[str, Any], logging.LogRecord, dict[str, Any]], None]) -> frozenset[Path]:
    """Where ``add_fields`` (a preset's) puts every field but the message of a task line in a request's trace:
    the values a cut line keeps whole."""
    record = logging.LogRecord("trackline.probe", logging.INFO, "probe.py", 1, _PROBE_MESSAGE, None, None, "probe")
    record.message = _PROBE_MESSAGE
    record.__dict__.update(
        tracking_id="probe-id", trace_id="0af7651916cd43dd8448eb211c80319c", span_id="b7ad6b7169203331",
        trace_flags="01", parent_span_id="00f067aa0ba902b7", task_id="probe-task", task_name="probe.task",
        parent_task_id="probe-parent")
    line: dict[str, Any] = {}
    add_fields(line, record, {})
    return frozenset(path for path, value in _leaves(line, ()) if value != _PROBE_MESSAGE)


class LineCap:
    """Cuts a line over ``limit`` bytes; ``fits`` is the length (in characters) under which any line fits."""

    def __init__(self, limit: int, encode: Encode, ensure_ascii: bool, keep: frozenset[Path]) -> None:
        self.limit = limit
        self.fits = limit - 1 if ensure_ascii else (limit - 1) // 4  # a character is at most 4 bytes of UTF-8
        self._encode = encode
        self._keep = keep
        self._keep_prefixes = frozenset(path[:end] for path in keep for end in range(1, len(path) + 1))

    def cut(self, log_data: dict[str, Any], line: str) -> str:
        """``line`` (``log_data`` encoded) if it fits with its newline, else the line cut to fit."""
        size = _bytes(line) + 1
        if size <= self.limit:
            return line
        data = self._native(log_data)
        data["truncated"] = True
        data["original_bytes"] = size
        bulky = sorted(((_bytes(self._encode(value)), path) for path, value in self._droppable(data, ())
                        if isinstance(value, dict | list)), key=lambda item: -item[0])
        while not self._cut_strings(data, _bytes(self._encode(data)) + 1 - self.limit) and bulky:
            whole, path = bulky.pop(0)  # too much that is not text: the largest object or list goes whole
            _set(data, path, f"...[truncated {whole} of {whole} bytes]")
        return self._encode(data)

    def _native(self, value: Any) -> Any:
        """A copy of ``value`` made of JSON's own types (a value the encoder renders with ``default`` becomes
        what it renders), so that cutting changes nothing the caller holds."""
        if isinstance(value, dict):
            return {key: self._native(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self._native(item) for item in value]
        return value if isinstance(value, _SCALARS) else json.loads(self._encode(value))

    def _cut_strings(self, data: dict[str, Any], excess: int) -> bool:
        """Cut the longest strings to one length that removes ``excess`` bytes; ``False`` if they cannot."""
        if excess <= 0:
            return True
        sized = sorted(((self._size(text), path, text) for path, text in _leaves(data, ())
                        if isinstance(text, str) and self._may_cut(path, text)), key=lambda item: -item[0])
        total = 0
        for count, (size, _, _) in enumerate(sized, 1):
            total += size
            level = (total - excess - count * _MARKER_ROOM) // count
            following = sized[count][0] if count < len(sized) else 0
            if level >= following and level >= 0:
                for _, path, text in sized[:count]:
                    _set(data, path, self._shorten(text, level))
                return True
        return False

    def _may_cut(self, path: Path, text: str) -> bool:
        return path not in self._keep or len(text) > _IDENTITY_MAX

    def _size(self, text: str) -> int:
        """The bytes ``text`` takes in the line, escapes included, without its quotes."""
        return _bytes(self._encode(text)) - 2

    def _shorten(self, text: str, room: int) -> str:
        """``text`` cut to at most ``room`` bytes in the line, with the marker."""
        keep = min(len(text), room)
        while keep and (size := self._size(text[:keep])) > room:
            keep = max(0, keep * room // size - 1)
        whole = _bytes(text)
        return f"{text[:keep]}...[truncated {whole - _bytes(text[:keep])} of {whole} bytes]"

    def _droppable(self, node: Any, path: Path) -> Iterator[tuple[Path, Any]]:
        """The largest parts of ``node`` that hold no identity field (nor are the cut line's flags), with paths."""
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            where = (*path, key)
            if where in self._keep_prefixes:
                if isinstance(value, dict | list):
                    yield from self._droppable(value, where)
            elif where not in _FLAGS:
                yield where, value


def _bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _leaves(value: Any, path: Path) -> Iterator[tuple[Path, Any]]:
    """Every value in ``value`` that is not an object or a list, with its path of keys and indexes."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    else:
        yield path, value


def _set(data: Any, path: Path, value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value
