"""The line cap (``max_line_bytes`` on JsonFormatter): a line that fits is written byte for byte as before; a
longer one, in every preset, is cut to fit as valid JSON with a marker, its flag and original length, keeping
the fields that tie it to its request; a bad setting is a one-line error."""

from __future__ import annotations

import json
import logging
import random
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from support.conf import edit_yaml
from support.paths import CONF
from trackline.config import ConfigError
from trackline.logs import JsonFormatter, check_logging_config
from trackline.logs.linecap import DEFAULT_MAX_LINE_BYTES, probe_paths
from trackline.logs.presets import PRESETS

TRACE = {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7", "trace_flags": "01",
         "task_id": "task-1", "task_name": "jobs.report", "parent_task_id": None}
MARKER = re.compile(r"\.\.\.\[truncated (\d+) of (\d+) bytes\]$")
MB = 1_500_000


def formatter(fields: str = "trackline", **options: Any) -> JsonFormatter:
    return JsonFormatter(fields=fields, gcp_project="proj" if fields == "gcp" else None, **options)


def record(message: str = "hello", exc: bool = False, **fields: Any) -> logging.LogRecord:
    """A record as TrackingIdFilter leaves it in a task of a request's trace, ``fields`` as its ``extra``."""
    exc_info = None
    if exc:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            exc_info = sys.exc_info()
    made = logging.LogRecord("acme.reports", logging.ERROR, "/srv/acme/reports.py", 42, message, None, exc_info,
                             "build")
    made.__dict__.update({"tracking_id": "req-1", **TRACE, **fields})
    return made


def written(line: str) -> int:
    """The bytes the handler writes for ``line``: UTF-8 and its newline."""
    return len(line.encode()) + 1


def cut_values(value: Any) -> list[str]:
    """Every string in ``value`` (a parsed line) that ends with the marker."""
    if isinstance(value, dict):
        return [text for item in value.values() for text in cut_values(item)]
    if isinstance(value, list):
        return [text for item in value for text in cut_values(item)]
    return [value] if isinstance(value, str) and MARKER.search(value) else []


def without_cut(line: dict[str, Any], whole: dict[str, Any]) -> dict[str, Any]:
    """``whole`` (the uncut line) with the values that ``line`` cut or replaced taken as ``line`` has them."""
    if isinstance(whole, dict) and isinstance(line, dict):
        return {key: without_cut(line.get(key), value) for key, value in whole.items()}
    if isinstance(whole, list) and isinstance(line, list):
        return [without_cut(mine, theirs) for mine, theirs in zip(line, whole, strict=True)]
    return line if isinstance(line, str) and MARKER.search(line) else whole


def test_the_default_is_the_log_hosts_mebibyte() -> None:
    assert formatter().max_line_bytes == DEFAULT_MAX_LINE_BYTES == 1_048_576


@pytest.mark.parametrize("fields", PRESETS)
def test_a_line_that_fits_is_untouched_to_the_last_byte(fields: str) -> None:
    capped, uncapped = formatter(fields, max_line_bytes=4096), formatter(fields, max_line_bytes=10**9)
    base = written(capped.format(record(message="")))
    exact = record(message="x" * (4096 - base))  # with its newline, exactly the cap
    assert written(capped.format(exact)) == 4096
    assert capped.format(exact) == uncapped.format(exact)
    over = record(message="x" * (4096 - base + 1))
    assert written(uncapped.format(over)) == 4097
    line = capped.format(over)
    assert written(line) <= 4096 and json.loads(line)["truncated"] is True


@pytest.mark.parametrize("fields", PRESETS)
def test_a_huge_message_is_cut_with_the_marker_and_the_line_keeps_what_ties_it(fields: str) -> None:
    big = record(message="m" * MB, note="short")
    line = formatter(fields).format(big)
    assert written(line) <= DEFAULT_MAX_LINE_BYTES and "\n" not in line
    parsed = json.loads(line)
    uncut = formatter(fields, max_line_bytes=10**9).format(big)
    whole = json.loads(uncut)
    [message] = cut_values(parsed)
    removed, original = map(int, MARKER.search(message).groups())
    assert original == MB and removed == MB - message.index("...[truncated")
    assert (parsed.pop("truncated"), parsed.pop("original_bytes")) == (True, written(uncut))
    # every other value, the ID, trace, task, timestamp, level and logger among them, is as it was
    assert parsed == without_cut(parsed, whole) and parsed != whole
    assert parsed["tracking_id"] == "req-1"


@pytest.mark.parametrize("fields", PRESETS)
def test_the_longest_values_are_cut_to_one_length_and_a_traceback_too(fields: str) -> None:
    line = formatter(fields, max_line_bytes=8192).format(
        record(message="m" * 6000, exc=True, payload="p" * 9000, detail="d" * 3000, small="s" * 200))
    parsed = json.loads(line)
    assert written(line) <= 8192
    cut = cut_values(parsed)
    kept = [text.index("...[truncated") for text in cut]
    assert len(cut) >= 3 and max(kept) - min(kept) <= 64  # one common length, in every preset's places
    assert "s" * 200 in line and '"req-1"' in line


@pytest.mark.parametrize("char", ["é", "\U0001f600", "\u2028"])
@pytest.mark.parametrize("ensure_ascii", [True, False], ids=["ascii", "utf-8"])
def test_non_ascii_text_at_the_cap_fits_to_the_last_byte(ensure_ascii: bool, char: str) -> None:
    capped = formatter(max_line_bytes=4096, json_ensure_ascii=ensure_ascii)
    uncapped = formatter(max_line_bytes=10**9, json_ensure_ascii=ensure_ascii)
    base = written(capped.format(record(message="")))
    size = written(uncapped.format(record(message=char))) - base  # its bytes in the line: \\u escapes or UTF-8
    count, pad = divmod(4096 - base, size)
    exact = record(message="x" * pad + char * count)
    assert written(capped.format(exact)) == 4096 and capped.format(exact) == uncapped.format(exact)
    over = "x" * pad + char * (count + 1)
    line = capped.format(record(message=over))
    assert written(line) <= 4096 and line.isascii() == ensure_ascii
    parsed = json.loads(line)
    kept, (removed, original) = MARKER.split(parsed["message"])[0], map(int, MARKER.search(parsed["message"]).groups())
    assert parsed["truncated"] is True and over.startswith(kept) and len(kept) > pad
    assert (original, removed) == (len(over.encode()), len(over.encode()) - len(kept.encode()))


def test_bytes_are_counted_not_characters() -> None:
    line = formatter(json_ensure_ascii=False, max_line_bytes=8192).format(record(message="é" * 8000))
    assert "é" in line and written(line) <= 8192 < len(line) * 2


def test_a_field_too_big_in_small_values_is_replaced_whole_and_the_text_cut() -> None:
    line = formatter(max_line_bytes=8192).format(record(message="m" * 10_000, numbers=list(range(10_000)),
                                                        note="short"))
    parsed = json.loads(line)
    assert written(line) <= 8192 and MARKER.search(parsed["numbers"])
    assert parsed["message"].startswith("mmmm") and MARKER.search(parsed["message"])
    assert (parsed["note"], parsed["task_id"]) == ("short", "task-1")


def test_cutting_changes_neither_the_record_nor_the_static_fields() -> None:
    static = {"service": {"name": "acme", "tags": ["a"]}}
    capped = formatter(max_line_bytes=4096, static_fields=static)
    nested = {"inner": ["v" * 9000]}
    made = record(nested=nested)
    assert written(capped.format(made)) <= 4096
    assert nested == {"inner": ["v" * 9000]} and static == {"service": {"name": "acme", "tags": ["a"]}}


@pytest.mark.parametrize("bad", [0, 100, "1 MiB", -1, True, 4095])
def test_a_bad_cap_is_a_one_line_error_in_check_config(bad: Any, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    path = conf / "logging.yaml"
    path.write_text((CONF / "logging.yaml").read_text())
    edit_yaml(path, lambda config: config["formatters"]["json"].update(max_line_bytes=bad))
    with pytest.raises(ConfigError) as error:
        check_logging_config(path, create_dirs=False)
    assert "\n" not in str(error.value)
    assert "formatter 'json': max_line_bytes must be a whole number of bytes, at least 4096" in str(error.value)


def test_the_shipped_logging_yaml_caps_every_formatter_from_one_setting(monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:
    monkeypatch.setenv("TRACKLINE_LOG_DIR", str(tmp_path))
    monkeypatch.setenv("TRACKLINE_MAX_LINE_BYTES", "65536")
    for name in ("logging.yaml", "logging.stdout.yaml"):
        formatters = check_logging_config(CONF / name)["formatters"]
        assert {key: value.get("max_line_bytes") for key, value in formatters.items()} == {
            "json": "65536", "json_access": "65536"}, name


def extras(line: dict[str, Any], fields: str) -> dict[str, Any]:
    """The object where preset ``fields`` puts a line's ``extra`` fields."""
    return line.get({"ecs": "labels", "otel": "attributes"}.get(fields, ""), line) or {}


def identity(line: dict[str, Any], fields: str) -> dict[Any, Any]:
    """The values of ``line`` at the paths that tie it to its request and source (as the cap finds them)."""
    values = {}
    for path in probe_paths(formatter(fields).add_fields)[0]:
        node: Any = line
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        values[path] = node
    return values


def assert_cut_keeps_identity(line: str, whole: str, fields: str, cap: int) -> dict[str, Any]:
    """``line`` (``whole`` capped at ``cap``) fits, is one JSON object with its flags and keeps its identity
    fields and a start of its message; the parsed line."""
    parsed, uncut = json.loads(line), json.loads(whole)
    assert written(line) <= cap and "\n" not in line
    assert (parsed["truncated"], parsed["original_bytes"]) == (True, written(whole))
    assert identity(parsed, fields) == identity(uncut, fields) and parsed["tracking_id"] == "req-1"
    message_key = "body" if fields == "otel" else "message"
    kept = MARKER.split(parsed[message_key])[0]
    assert uncut[message_key].startswith(kept) and (kept == uncut[message_key] or MARKER.search(parsed[message_key]))
    return parsed


@pytest.mark.parametrize("fields", PRESETS)
@pytest.mark.parametrize("count", [32_000, 80_000])
def test_many_top_level_fields_are_omitted_largest_first_and_counted(fields: str, count: int) -> None:
    # extra=request.args.to_dict() with a client's keys: each field small, the line over the cap in keys
    made = record(**{f"k{index}_{'x' * (index % 40)}": index for index in range(count)})
    line, whole = formatter(fields).format(made), formatter(fields, max_line_bytes=10**9).format(made)
    parsed = assert_cut_keeps_identity(line, whole, fields, DEFAULT_MAX_LINE_BYTES)
    assert parsed.get("message", parsed.get("body")) == "hello"
    mine, theirs = extras(parsed, fields), extras(json.loads(whole), fields)
    omitted = {key: value for key, value in theirs.items() if key not in mine}
    assert parsed["omitted_fields"] == len(omitted) > 0
    assert all(theirs[key] == value for key, value in mine.items() if key in theirs)  # what stays is whole
    size = lambda key: len(json.dumps({key: theirs[key]}))  # noqa: E731
    assert max(size(key) for key in mine if key.startswith("k")) <= min(map(size, omitted))
    assert written(line) > DEFAULT_MAX_LINE_BYTES - 1000  # no more left out than needed


@pytest.mark.parametrize("fields", PRESETS)
def test_a_huge_key_is_left_out_and_counted_and_the_message_cut_with_it(fields: str) -> None:
    made = record(message="m" * MB, note="short", **{"k" * 1_200_000: 1})
    line, whole = formatter(fields).format(made), formatter(fields, max_line_bytes=10**9).format(made)
    parsed = assert_cut_keeps_identity(line, whole, fields, DEFAULT_MAX_LINE_BYTES)
    assert parsed["omitted_fields"] == 1 and "k" * 1000 not in line
    assert extras(parsed, fields)["note"] == "short"
    assert written(line) > DEFAULT_MAX_LINE_BYTES - 1000  # the message keeps the room the key left


@pytest.mark.parametrize("fields", PRESETS)
@pytest.mark.parametrize("nested", [{"query": {"k" * 1_200_000: 1}}, {"items": [{"a": 1}, {"k" * 1_200_000: 2}]},
                                    {"query": {f"k{index}": index for index in range(80_000)}}])
def test_huge_keys_nested_are_replaced_with_their_object(fields: str, nested: dict[str, Any]) -> None:
    made = record(note="short", **nested)
    line, whole = formatter(fields).format(made), formatter(fields, max_line_bytes=10**9).format(made)
    parsed = assert_cut_keeps_identity(line, whole, fields, DEFAULT_MAX_LINE_BYTES)
    [key] = nested
    assert MARKER.search(extras(parsed, fields)[key]) and extras(parsed, fields)["note"] == "short"
    assert "omitted_fields" not in parsed


@pytest.mark.parametrize("fields", PRESETS)
@pytest.mark.parametrize("seed", range(6))
def test_any_shape_is_cut_to_fit_keeping_what_ties_it(fields: str, seed: int) -> None:
    """Random lines of many fields, huge keys and values, nested objects and lists, non-ASCII text."""
    rng = random.Random(seed)
    text = lambda size: "".join(rng.choices("aé\"\\\n€😀z", k=size))  # noqa: E731

    def value(depth: int) -> Any:
        kind = rng.choices(["int", "text", "long", "object", "list"], [4, 4, 1, 1, 1] if depth < 2 else [1, 1, 0, 0, 0])
        if kind == ["object"]:
            return {text(rng.choice([3, 20, 5000])): value(depth + 1) for _ in range(rng.randint(0, 8))}
        if kind == ["list"]:
            return [value(depth + 1) for _ in range(rng.randint(0, 8))]
        return {"int": rng.randint(-10**9, 10**9), "text": text(rng.randint(0, 40)),
                "long": text(rng.randint(1000, 20_000))}[kind[0]]

    cap = rng.choice([4096, 8192, 65_536])
    options = {"max_line_bytes": cap, "json_ensure_ascii": rng.choice([True, False])}
    fields_of_line = {f"k_{text(rng.choice([2, 10, 3000, 9000]))}": value(0)
                      for _ in range(rng.choice([1, 20, 300, 3000]))}
    made = record(message=text(rng.choice([10, 10_000])), exc=rng.choice([True, False]), **fields_of_line)
    line = formatter(fields, **options).format(made)
    whole = formatter(fields, **{**options, "max_line_bytes": 10**9}).format(made)
    if written(whole) > cap:
        assert_cut_keeps_identity(line, whole, fields, cap)
    else:
        assert line == whole


@pytest.mark.parametrize("fields", PRESETS)
def test_an_indented_line_whose_fields_are_misjudged_still_fits(fields: str) -> None:
    # json_indent puts each field on its own line: more bytes per field than the cut reckons, so it falls back
    # to leaving out every field that does not tie the line to its request
    made = record(**{f"k{index}": index for index in range(30_000)})
    line = formatter(fields, json_indent=2, max_line_bytes=65_536).format(made)
    parsed, whole = json.loads(line), json.loads(formatter(fields, max_line_bytes=10**9).format(made))
    assert written(line) <= 65_536 and parsed["truncated"] is True
    assert identity(parsed, fields) == identity(whole, fields)
    assert parsed["omitted_fields"] == 30_000 and not any(key.startswith("k") for key in extras(parsed, fields))
