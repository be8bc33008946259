"""Find every log line of one request across log files: rotated and gzipped ones, one host or a log host's tree.

Files are read in large binary blocks and searched for the ID's bytes; only the lines that contain them are
decoded and parsed, so a search runs at about the speed of ``grep -F`` with a flat memory use.
"""

from __future__ import annotations

import glob
import json
import os
import re
import zlib
from collections.abc import Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from trackline.reader.history import split, trace_scans

#: The files of one host: trackline's three, the Celery worker's and the edge's nginx JSON access log.
LOG_NAMES = ("app.log", "access.log", "error.log", "worker.log", "trackline-access.log")
#: How much is read (or decompressed) at a time.
BLOCK = 1 << 20
#: How many files are read at once.
READERS = min(4, os.cpu_count() or 1)
_RELATIVE = re.compile(r"(\d+)\s*([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True, order=True)
class Match:
    """One matching line, ordered by its timestamp (then where it was found: file, then byte offset)."""

    timestamp: datetime
    source: str
    offset: int
    line: str = field(compare=False)
    record: dict[str, Any] = field(compare=False)


@dataclass
class Search:
    """What a search found and what it had to skip."""

    matches: list[Match] = field(default_factory=list)
    malformed: int = 0
    unfinished: int = 0  # a file's last line, not yet JSON and with no newline: still being written
    duplicates: int = 0  # shipped lines that reached the log host more than once (RELP is at-least-once)
    unreadable: list[str] = field(default_factory=list)


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``--since``: an ISO 8601 time (naive means local) or a span back from now like ``15m``, ``2h``, ``1d``."""
    relative = _RELATIVE.fullmatch(value.strip())
    if relative:
        now = now or datetime.now(UTC)
        return now - timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--since {value!r}: expected an ISO 8601 time or a span such as 30s, 15m, 2h, 1d") from None
    return moment if moment.tzinfo else moment.astimezone()


def directory_bases(directory: Path) -> list[Path]:
    """The base files to read for ``directory``: its own ``LOG_NAMES``, then those of each subdirectory (a log
    host's ``<hostname>/`` folders), in name order."""
    try:
        hosts = sorted(child for child in directory.iterdir() if child.is_dir())
    except OSError:  # missing or unreadable: the caller says so
        hosts = []
    return [folder / name for folder in (directory, *hosts) for name in LOG_NAMES]


def log_files(bases: Iterable[Path]) -> list[tuple[Path, Path]]:
    """``(base, file)`` for each base file and its rotations (``app.log``, ``app.log.1``, ``app.log-20260101.gz``,
    ...) in order: a base and its rotations are one file set."""
    files: dict[Path, Path] = {}
    for base in bases:
        name = glob.escape(base.name)
        rotations = (*base.parent.glob(f"{name}.*"), *base.parent.glob(f"{name}-*"))  # not app.logger
        if base.is_file():
            files.setdefault(base, base)
        for path in sorted(p for p in rotations if p.is_file()):
            files.setdefault(path, base)
    return [(base, path) for path, base in files.items()]


def _blocks(stream: IO[bytes], gzipped: bool) -> Iterator[bytes]:
    """The (decompressed) content of ``stream``, ``BLOCK`` bytes at a time; concatenated gzip members too."""
    if not gzipped:
        while block := stream.read(BLOCK):
            yield block
        return
    inflater, fed, pending = zlib.decompressobj(wbits=31), False, b""
    while True:
        if inflater.eof:  # a next gzip member (``cat a.gz b.gz``), or the end
            pending = inflater.unused_data + pending or stream.read(BLOCK)
            if not pending.strip(b"\0"):  # nothing more, or the zero padding that gzip tolerates
                return
            inflater, fed = zlib.decompressobj(wbits=31), False
        if not pending:
            pending = stream.read(BLOCK)
            if not pending:
                break
        block = inflater.decompress(pending, BLOCK)
        fed, pending = True, inflater.unconsumed_tail
        if block:
            yield block
    if fed and not inflater.eof:
        raise EOFError("compressed file ended before the end-of-stream marker was reached")


def _lines_containing(needle: bytes, blocks: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """``(offset, line)`` of each line that contains ``needle``, newline kept; a last line without one too."""
    carry = b""
    start = 0  # stream offset of ``carry + block``
    for block in blocks:
        data = carry + block if carry else block
        end = data.rfind(b"\n") + 1  # search only whole lines; the rest waits for the next block
        position = data.find(needle, 0, end)
        while position >= 0:
            first = data.rfind(b"\n", 0, position) + 1
            last = data.find(b"\n", position) + 1
            yield start + first, data[first:last]
            position = data.find(needle, last, end)
        carry = data[end:]
        start += end
    if needle in carry:
        yield start, carry


def _get(record: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The value at ``path`` in ``record`` (nested objects), or ``None``."""
    value: Any = record
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


@dataclass(frozen=True)
class Shape:
    """Where a field preset (``fields:`` in logging.yaml, trackline.logs.presets) keeps what ``trace`` reads.

    Paths are keys into nested objects; ``marker`` is a top-level key that only this preset's lines have.
    ``shown`` are the top-level keys that ``--pretty`` shows in its columns (or never), not as ``key=value``.
    """

    name: str
    marker: str
    timestamp: str
    level: tuple[str, ...]
    logger: tuple[str, ...]
    message: str
    traceback: tuple[str, ...]
    trace_id: tuple[str, ...] = ("trace_id",)
    trace_prefix: str = ""  # GCP's trace is a path: projects/PROJECT/traces/TRACE_ID
    shown: frozenset[str] = frozenset()

    def trace(self, record: dict[str, Any]) -> Any:
        value = _get(record, self.trace_id)
        if self.trace_prefix and isinstance(value, str):
            return value.rpartition(self.trace_prefix)[2]
        return value


#: trackline's own names (the default preset, and the edge's nginx lines).
TRACKLINE = Shape("trackline", "level", "@timestamp", ("level",), ("logger",), "message", ("exc_info",))
#: The other presets, in the order their markers are tried.
SHAPES = (
    Shape("ecs", "log.level", "@timestamp", ("log.level",), ("log", "logger"), "message", ("error", "stack_trace"),
          ("trace", "id"), shown=frozenset({"ecs.version", "log", "process", "error"})),
    Shape("gcp", "severity", "time", ("severity",), ("logger",), "message", ("stack_trace",),
          ("logging.googleapis.com/trace",), "/traces/",
          frozenset({"pid", "logging.googleapis.com/sourceLocation"})),
    Shape("otel", "severity_text", "timestamp", ("severity_text",), ("instrumentation_scope", "name"), "body",
          ("attributes", "exception.stacktrace"), shown=frozenset({"severity_number", "resource"})),
    Shape("datadog", "status", "timestamp", ("status",), ("logger", "name"), "message", ("error", "stack"),
          shown=frozenset({"pid", "loc", "error"})),
)


def shape(record: dict[str, Any]) -> Shape:
    """The preset ``record`` was written in: trackline's when it has ``@timestamp`` and ``level``."""
    if "level" in record and "@timestamp" in record:
        return TRACKLINE
    for candidate in SHAPES:
        if candidate.marker in record:
            return candidate
    return TRACKLINE


def _moment(record: Any, form: Shape) -> datetime:
    moment = datetime.fromisoformat(record[form.timestamp])
    return moment if moment.tzinfo else moment.astimezone()


def find(request_id: str, bases: Iterable[Path], since: datetime | None = None) -> Search:
    """Lines of ``bases`` and their rotations (``log_files``) whose ``tracking_id`` or trace ID is
    ``request_id`` (and not before ``since``), in time order; each line read in its field preset (``shape``).

    Only lines containing the ID text are parsed, so a malformed line is counted when it could have been a
    match. A file's last line that is not JSON yet and has no newline is counted apart as unfinished: a
    reader can see part of a worker's write to a live file. A line that carries ``hostname`` (shipped to a
    log host) is kept once per file set: byte-identical copies in the same ``<host>/<file>`` and its rotations
    are the at-least-once delivery's duplicates.

    Files are read by a few threads at once (reading and decompressing release the GIL), each keeping only its
    matches, so memory stays flat whatever the size of the tree.
    """
    bases = list(bases)
    history = split(bases, log_files(bases))  # sources compacted into Parquet are read there (docs/sql.md)
    files = history.json
    search = Search()
    shipped: set[tuple[Path, bytes]] = set()
    with ThreadPoolExecutor(max_workers=min(READERS, len(files) or 1)) as pool:
        scans = pool.map(lambda file: _scan(request_id, file[1], since), files)
        parquet = trace_scans(request_id, history.parquet, since)
        for (base, _), scan in [*zip(files, scans, strict=True), *parquet]:  # in file order: a duplicate's first stays
            search.malformed += scan.malformed
            search.unfinished += scan.unfinished
            search.unreadable.extend(scan.unreadable)
            for match, raw in scan.found:
                if "hostname" in match.record:
                    key = (base, raw)
                    if key in shipped:
                        search.duplicates += 1
                        continue
                    shipped.add(key)
                search.matches.append(match)
    search.matches.sort()
    return search


@dataclass
class _Scan:
    """One file's matches, each with its line's bytes (what makes a duplicate), and what it had to skip."""

    found: list[tuple[Match, bytes]] = field(default_factory=list)
    malformed: int = 0
    unfinished: int = 0
    unreadable: list[str] = field(default_factory=list)


def _scan(request_id: str, path: Path, since: datetime | None) -> _Scan:
    """One file's matches (not yet sorted or rid of duplicates) and what it had to skip."""
    scan = _Scan()
    try:
        with path.open("rb") as stream:
            for offset, raw in _lines_containing(request_id.encode(), _blocks(stream, path.suffix == ".gz")):
                line = raw.decode("utf-8", errors="replace")
                try:
                    record = json.loads(line)
                    form = shape(record)
                    moment = _moment(record, form)
                except (ValueError, KeyError, TypeError):  # not JSON, not an object, or no usable timestamp
                    if raw.endswith(b"\n"):
                        scan.malformed += 1
                    else:
                        scan.unfinished += 1
                    continue
                if request_id in (record.get("tracking_id"), form.trace(record)) and not (since and moment < since):
                    scan.found.append((Match(moment, str(path), offset, line.rstrip("\n"), record), raw.rstrip(b"\n")))
    except (OSError, EOFError, zlib.error) as exc:  # unreadable, or a damaged / half-written .gz
        scan.unreadable.append(f"{path}: {exc}")
    return scan


#: Fields the pretty view shows in its columns or its summary, not again as ``key=value``.
_SHOWN = frozenset({"@timestamp", "level", "logger", "tracking_id", "message", "pid", "loc", "func", "exc_info",
                    "hostname", "request_method", "request_path", "query_string", "status_code", "request_time"})


def pretty(matches: list[Match]) -> list[str]:
    """A compact human view: time (and date, over several days), [hostname,] file, level, logger, then the
    message and the other fields; each line read in its own field preset.

    Each column is as wide as its longest value among ``matches``, so long rotated file names keep it aligned.
    """
    if not matches:
        return []
    hosted = any("hostname" in match.record for match in matches)
    days = {match.timestamp.astimezone().date() for match in matches}
    clock = "%H:%M:%S.%f" if len(days) == 1 else "%Y-%m-%d %H:%M:%S.%f"  # the date when the story spans days
    files = [Path(match.source).name for match in matches]
    views = [_columns(match.record) for match in matches]
    widths = [max(len(view[column]) for view in views) for column in range(3)]
    file_width = max(map(len, files))
    rows = []
    for match, file, (hostname, level, logger) in zip(matches, files, views, strict=True):
        record, form = match.record, shape(match.record)
        when = match.timestamp.astimezone().strftime(clock)[:-3]  # local time: one zone for the merged view
        summary = _summary(record) if form is TRACKLINE else _preset_summary(record, form)
        columns = [when, *([f"{hostname:<{widths[0]}}"] if hosted else []),
                   f"{file:<{file_width}}", f"{level:<{widths[1]}}", f"{logger:<{widths[2]}}", summary]
        rows.append(" ".join(columns).rstrip())
        if traceback := _get(record, form.traceback):
            rows.extend("    " + row for row in str(traceback).splitlines())
    return rows


def _columns(record: dict[str, Any]) -> tuple[str, str, str]:
    """The hostname, level and logger columns of a line (``-`` where it has none)."""
    form = shape(record)
    level, logger = _get(record, form.level), _get(record, form.logger)
    return (str(record.get("hostname", "-")), "-" if level is None else str(level),
            "-" if logger is None else str(logger))


def _summary(record: dict[str, Any]) -> str:
    """The message (for an access line: method, path, status and time), then the fields no column shows."""
    text = str(record.get("message", ""))
    if "status_code" in record:
        query = f"?{record['query_string']}" if record.get("query_string") else ""
        text = f"{record.get('request_method')} {record.get('request_path')}{query} -> {record.get('status_code')}" \
               f" ({record.get('request_time')}s)"
    return _with_fields(text, record, _SHOWN)


def _preset_summary(record: dict[str, Any], form: Shape) -> str:
    """A preset's line: its message, then its top-level fields but those the columns show (``key=value``, an
    object as JSON)."""
    shown = {form.timestamp, form.level[0], form.logger[0], form.message, "tracking_id", "hostname", *form.shown}
    if len(form.traceback) == 1:  # a field of its own (not an attribute among others)
        shown.add(form.traceback[0])
    return _with_fields(str(record.get(form.message, "")), record, shown)


def _with_fields(text: str, record: dict[str, Any], shown: Collection[str]) -> str:
    extras = [f"{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in record.items()
              if key not in shown and value not in (None, "")]
    return "  ".join([text, " ".join(extras)]) if extras else text
