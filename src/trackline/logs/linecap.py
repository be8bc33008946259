"""The line cap: no JSON line longer than the shipping path carries (``max_line_bytes`` on ``JsonFormatter``).

A line of up to ``max_line_bytes`` bytes (UTF-8, its newline included) is written as it is: the formatter checks
one length per line. A longer one is cut here, in any preset: its longest string values (a message, a field, a
traceback) are cut to one common length, each ending in ``...[truncated N of M bytes]`` (N bytes of the value's
M, in UTF-8), and the line gains ``"truncated": true`` and ``"original_bytes"`` at its top level. The fields
that tie a line to its request and its source stay whole, and the message stays (cut if need be): whatever path
the preset gives them (found once per formatter from a probe line, ``probe_paths``). When cutting strings alone
cannot make room, what it cannot shrink goes, largest first (measured as it would be once its strings were cut),
until cutting can: first the objects and lists holding no identity field, each replaced whole by the marker;
then the fields themselves (many small ones, a huge key), counted in ``"omitted_fields"``. The reference:
docs/log-format.md, "Long lines".
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

#: The default cap: 1 MiB, the longest line that reaches the log host whole (the shipper's limit, rsyslog/, is
#: 1 MiB and 1 KiB: room for the syslog header).
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
#: A part of a line that holds no identity field: its path, value, bytes in the line, and ``LineCap._room``.
Part = tuple[Path, Any, int, int]
_SCALARS = (str, int, float, bool, type(None))
#: What a cut line gains at its top level.
_FLAGS = frozenset({("truncated",), ("original_bytes",), ("omitted_fields",)})
#: The most ``,"omitted_fields":N`` adds to a line (with room for the spaces of an encoder of one's own).
_OMITTED_ROOM = len(', "omitted_fields": ') + 12


def max_line_bytes(value: Any) -> int:
    """``max_line_bytes`` from logging.yaml (a whole number, or its digits after ``${VAR}`` expansion)."""
    number = value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    if number is None or number < MIN_MAX_LINE_BYTES:
        raise ValueError(f"max_line_bytes must be a whole number of bytes, at least {MIN_MAX_LINE_BYTES}"
                         f" (default {DEFAULT_MAX_LINE_BYTES}, what reaches the log host whole), not {value!r}")
    return number


def probe_paths(add_fields: Callable[[dict[str, Any], logging.LogRecord, dict[str, Any]], None]
                ) -> tuple[frozenset[Path], Path | None]:
    """Where ``add_fields`` (a preset's) puts every field of a task line in a request's trace: the paths of all
    but the message (the values a cut line keeps whole), and the message's path."""
    record = logging.LogRecord("trackline.probe", logging.INFO, "probe.py", 1, _PROBE_MESSAGE, None, None, "probe")
    record.message = _PROBE_MESSAGE
    record.__dict__.update(
        tracking_id="probe-id", trace_id="0af7651916cd43dd8448eb211c80319c", span_id="b7ad6b7169203331",
        trace_flags="01", parent_span_id="00f067aa0ba902b7", task_id="probe-task", task_name="probe.task",
        parent_task_id="probe-parent")
    line: dict[str, Any] = {}
    add_fields(line, record, {})
    paths = dict(_leaves(line, ()))
    message = next((path for path, value in paths.items() if value == _PROBE_MESSAGE), None)
    return frozenset(path for path in paths if path != message), message


class LineCap:
    """Cuts a line over ``limit`` bytes; ``fits`` is the length (in characters) under which any line fits."""

    def __init__(self, limit: int, encode: Encode, ensure_ascii: bool,
                 add_fields: Callable[[dict[str, Any], logging.LogRecord, dict[str, Any]], None]) -> None:
        self.limit = limit
        self.fits = limit - 1 if ensure_ascii else (limit - 1) // 4  # a character is at most 4 bytes of UTF-8
        self._encode = encode
        self._comma = _bytes(encode([0, 0])) - _bytes(encode([0])) - 1  # the separator between two fields: ","
        self._keep, message = probe_paths(add_fields)
        whole = self._keep | {message} if message else self._keep  # never replaced nor omitted
        self._keep_prefixes = frozenset(path[:end] for path in whole for end in range(1, len(path) + 1))

    def cut(self, log_data: dict[str, Any], line: str) -> str:
        """``line`` (``log_data`` encoded) if it fits with its newline, else the line cut to fit."""
        size = _bytes(line) + 1
        if size <= self.limit:
            return line
        data = self._native(log_data)
        data["truncated"] = True
        data["original_bytes"] = size
        excess = _bytes(self._encode(data)) + 1 - self.limit
        if self._cut_strings(data, excess):
            return self._encode(data)
        # measured once: each part that holds no identity field, its bytes and the room its strings give
        parts = [(path, value, _bytes(self._encode(value)), self._room(value, path))
                 for path, value in self._droppable(data, ())]
        excess, room = self._replace_bulky(data, parts, excess, self._room(data, ()))
        omitted = 0
        if excess > room:  # each field left out takes its comma, but the last in its object: one less per object
            omitted = self._omit(data, parts, excess + _OMITTED_ROOM + self._comma * len(self._keep_prefixes), room)
            data["omitted_fields"] = omitted
        if not self._cut_strings(data, _bytes(self._encode(data)) + 1 - self.limit):
            # the last resort, for an encoder whose sizes the above misjudged (indent): every such field goes
            rest = [(path, value, 0, 0) for path, value in self._droppable(data, ())]
            data["omitted_fields"] = omitted + self._omit(data, rest, sys.maxsize, 0)
            self._cut_strings(data, _bytes(self._encode(data)) + 1 - self.limit)
        return self._encode(data)

    def _room(self, value: Any, path: Path) -> int:
        """The most that cutting the strings in ``value`` (at ``path``) can take from the line (a character
        takes at most 6 bytes, ``\\uXXXX``: a string too short to outgrow the marker is not encoded)."""
        return sum(max(0, self._size(text) - _MARKER_ROOM) for where, text in _leaves(value, path)
                   if isinstance(text, str) and len(text) * 6 > _MARKER_ROOM and self._may_cut(where, text))

    def _replace_bulky(self, data: dict[str, Any], parts: list[Part], excess: int, room: int) -> tuple[int, int]:
        """Replace whole the objects and lists among ``parts``, largest first, until cutting strings can remove
        the ``excess`` bytes (``room`` is what it can remove now); the new excess and room. ``parts`` is updated."""
        markers = {index: _marker(whole) for index, (_, value, whole, lost) in enumerate(parts)
                   if isinstance(value, dict | list) and whole - len(_marker(whole)) - 2 > lost}
        for index in sorted(markers, key=lambda index: len(markers[index]) + parts[index][3] - parts[index][2]):
            if excess <= room:
                break
            path, _, whole, lost = parts[index]
            _set(data, path, markers[index])
            parts[index] = (path, markers[index], len(markers[index]) + 2, 0)
            excess, room = excess - whole + parts[index][2], room - lost
        return excess, room

    def _omit(self, data: dict[str, Any], parts: list[Part], excess: int, room: int) -> int:
        """Leave out the fields among ``parts``, largest first, until cutting strings can remove the ``excess``
        bytes (``room`` is what it can remove now); how many."""
        fields = []
        for path, _, whole, lost in parts:
            if isinstance(_parent(data, path), dict):  # '"key": value' and its comma
                saved = _bytes(self._encode({path[-1]: None})) - len("{null}") + whole + self._comma
                fields.append((saved - lost, saved, lost, path))
        fields.sort(key=lambda item: -item[0])
        omitted = 0
        for _, saved, lost, path in fields:
            if excess <= room:
                break
            del _parent(data, path)[path[-1]]
            excess, room, omitted = excess - saved, room - lost, omitted + 1
        return omitted

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
            if level >= 0 and level + _MARKER_ROOM >= following:  # the rest would gain little
                for _, path, text in sized[:count]:
                    _set(data, path, self._shorten(text, level))
                return True
        return False

    def _may_cut(self, path: Path, text: str) -> bool:
        """Whether cutting may shorten ``text``: it is no identity field, or too long to be one."""
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
        """The largest parts of ``node`` that hold no identity field (nor the message, nor are the cut line's
        flags), with paths."""
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            where = (*path, key)
            if where in self._keep_prefixes:
                if isinstance(value, dict | list):
                    yield from self._droppable(value, where)
            elif where not in _FLAGS:
                yield where, value


def _marker(whole: int) -> str:
    """What replaces a value of ``whole`` bytes (ASCII: its length is its bytes in the line, quotes aside)."""
    return f"...[truncated {whole} of {whole} bytes]"


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


def _parent(data: Any, path: Path) -> Any:
    """The object or list that holds the value at ``path``."""
    for key in path[:-1]:
        data = data[key]
    return data


def _set(data: Any, path: Path, value: Any) -> None:
    _parent(data, path)[path[-1]] = value
