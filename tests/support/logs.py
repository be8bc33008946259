"""Reading JSON log files, and the log contract (README, "Log format") that every line must keep."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

#: Fields every line of every log file carries (README, "Log format").
CONTRACT_FIELDS = {"@timestamp": str, "level": str, "logger": str, "tracking_id": (str, type(None)),
                   "message": str, "pid": int}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d")

#: Request fields of every access line, with their types.
ACCESS_FIELDS: dict[str, Any] = {
    "remote_addr": str, "protocol": str, "host": str, "request_method": str, "request_path": str,
    "query_string": str, "status_code": int, "response_length": int, "referer": (str, type(None)),
    "user_agent": (str, type(None)), "request_time": float,
}

#: Request fields that are null in the access line of a request gunicorn answered without parsing it.
UNPARSED_FIELDS = frozenset({"protocol", "host", "request_method", "request_path", "query_string"})

#: The app's WARNING when it replaces a client's X-Tracking-ID that the policy refuses.
REPLACED = "replaced invalid tracking ID from X-Tracking-ID"

#: ``read(name="app.log")``: a log file's lines (the ``logged`` fixture's reader).
LogReader = Callable[..., list[dict[str, Any]]]


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """Every complete line of ``path`` parsed as JSON; fails the test naming the first line that is not.

    Text after the last newline is a write still in progress (a reader can see part of a worker's
    ``os.write``), so it is left for the next read; ``assert_lines_complete`` checks files once writers end.
    """
    if not path.exists():
        return []
    *lines, _in_progress = path.read_bytes().split(b"\n")
    return parse_json_lines((line.decode("utf-8") for line in lines), path)


def read_rotated_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a log file that nothing writes any more (text after the last newline too), gzip-compressed
    (``*.gz``) or not, parsed as JSON; fails the test naming the first line that is not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as file:
        return parse_json_lines(file.read().splitlines(), path)


def parse_json_lines(lines: Iterable[str], source: Path) -> list[dict[str, Any]]:
    """Each of ``lines`` (of file ``source``) parsed as JSON; fails the test naming the first that is not."""
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            pytest.fail(f"{source}:{number} is not JSON ({exc}): {line[:200]!r}")
    return records


def assert_lines_complete(log_dir: Path) -> None:
    """Every file in ``log_dir`` ends with a newline and is JSON lines: call once nothing writes there."""
    for path in sorted(log_dir.glob("*.log")):
        text = path.read_text(encoding="utf-8")
        assert not text or text.endswith("\n"), f"{path} ends in a partial line: {text[-200:]!r}"
        read_json_lines(path)


def assert_contract(record: dict[str, Any]) -> None:
    """``record`` has every contract field with the contract type and timestamp shape."""
    for name, kind in CONTRACT_FIELDS.items():
        assert name in record, f"missing {name!r} in {record}"
        assert isinstance(record[name], kind), f"{name!r} has type {type(record[name]).__name__} in {record}"
    assert TIMESTAMP.fullmatch(record["@timestamp"]), record["@timestamp"]


def assert_access_line(record: dict[str, Any]) -> None:
    """An access line: contract fields plus every request field with its type (bool is not an int here)."""
    assert_contract(record)
    assert record["logger"] == "gunicorn.access"
    unparsed = record.get("request_method", "") is None and record.get("status_code", 0) >= 400
    for name, kind in ACCESS_FIELDS.items():
        assert name in record, f"missing {name!r} in {record}"
        if unparsed and name in UNPARSED_FIELDS:
            assert record[name] is None, f"{name!r} in {record}"
            continue
        assert isinstance(record[name], kind) and not isinstance(record[name], bool), f"{name!r} in {record}"
    assert record["request_time"] >= 0
