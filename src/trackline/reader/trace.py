"""Find every log line of one request across log files: rotated and gzipped ones, one host or a log host's tree.

Files are read in large binary blocks and searched for the ID's bytes; only the lines that contain them are
decoded and parsed, so a search runs at about the speed of ``grep -F`` with a flat memory use. Plain files are
read into one reused buffer per reader (no new memory per block), gzipped ones decompressed block by block.

``trackline trace`` starts by importing this module: it imports only what a search uses (no typing,
dataclasses or concurrent.futures, whose imports would cost more than searching a few hundred MB).
"""

from __future__ import annotations

import errno
import json
import os
import re
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from trackline.reader.history import TYPE_CHECKING, split, trace_scans
from trackline.reader.text import escape

if TYPE_CHECKING:  # typing.TYPE_CHECKING without importing typing
    from collections.abc import Collection, Iterable, Iterator
    from typing import Any

#: The files of one host: trackline's three, the Celery worker's and the edge's nginx JSON access log.
LOG_NAMES = ("app.log", "access.log", "error.log", "worker.log", "trackline-access.log")
#: How much is read (or decompressed) at a time.
BLOCK = 1 << 20
#: How much compressed input is given to zlib at a time (a small piece: what zlib leaves of it is copied).
GZ_INPUT = 1 << 16
#: How many files are read at once.
READERS = min(4, os.cpu_count() or 1)
#: How many plain bytes take as long to search as one gzipped byte (to decompress about 5 to 20 bytes of text):
#: the biggest pieces of work are started first, so the readers finish together.
GZ_WEIGHT = 40
_RELATIVE = re.compile(r"(\d+)\s*([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class Match:
    """One matching line, ordered by its timestamp (then where it was found: file, then byte offset).

    Immutable; equal and hashed by what orders it (``line`` and ``record`` follow from the file and offset).
    """

    __slots__ = ("line", "offset", "record", "source", "timestamp")
    timestamp: datetime
    source: str
    offset: int
    line: str
    record: dict[str, Any]

    def __init__(self, timestamp: datetime, source: str, offset: int, line: str, record: dict[str, Any]) -> None:
        for name, value in (("timestamp", timestamp), ("source", source), ("offset", offset), ("line", line),
                            ("record", record)):
            object.__setattr__(self, name, value)

    def _key(self) -> tuple[datetime, str, int]:
        return (self.timestamp, self.source, self.offset)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: a Match is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: a Match is immutable")

    def __eq__(self, other: object) -> bool:
        return self._key() == other._key() if isinstance(other, Match) else NotImplemented

    def __lt__(self, other: Match) -> bool:
        return self._key() < other._key()

    def __le__(self, other: Match) -> bool:
        return self._key() <= other._key()

    def __gt__(self, other: Match) -> bool:
        return self._key() > other._key()

    def __ge__(self, other: Match) -> bool:
        return self._key() >= other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"Match(timestamp={self.timestamp!r}, source={self.source!r}, offset={self.offset!r}, "
                f"line={self.line!r}, record={self.record!r})")


class Search:
    """What a search found and what it had to skip."""

    def __init__(self) -> None:
        self.matches: list[Match] = []
        self.malformed = 0
        self.unfinished = 0  # a file's last line, not yet JSON and with no newline: still being written
        self.duplicates = 0  # shipped lines that reached the log host more than once (RELP is at-least-once)
        self.unreadable: list[str] = []

    def __repr__(self) -> str:
        return (f"Search(matches={self.matches!r}, malformed={self.malformed}, unfinished={self.unfinished}, "
                f"duplicates={self.duplicates}, unreadable={self.unreadable!r})")


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
        with os.scandir(directory) as entries:
            hosts = sorted(directory / entry.name for entry in entries if entry.is_dir())
    except OSError:  # missing or unreadable: the caller says so
        hosts = []
    return [folder / name for folder in (directory, *hosts) for name in LOG_NAMES]


def log_files(bases: Iterable[Path]) -> list[tuple[Path, Path]]:
    """``(base, file)`` for each base file and its rotations (``app.log``, ``app.log.1``, ``app.log-20260101.gz``,
    ...) in order: a base and its rotations are one file set."""
    files: dict[Path, Path] = {}
    listed: dict[Path, set[str] | None] = {}  # each folder's file names, listed once for all its bases
    for base in bases:
        folder = base.parent
        if folder not in listed:
            listed[folder] = _file_names(folder)
        names = listed[folder]
        if names is None:  # not listable: the base file may still be there (a folder without read permission)
            if base.is_file():
                files.setdefault(base, base)
            continue
        if base.name in names:
            files.setdefault(base, base)
        rotated = (f"{base.name}.", f"{base.name}-")  # app.log.1, app.log-20260101.gz; not app.logger
        for name in sorted(name for name in names if name.startswith(rotated)):
            files.setdefault(folder / name, base)
    return [(base, path) for path, base in files.items()]


def _file_names(folder: Path) -> set[str] | None:
    """The names of the files in ``folder`` (symbolic links followed), or ``None`` when it cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            return {entry.name for entry in entries if entry.is_file()}
    except FileNotFoundError:
        return set()
    except OSError:
        return None


def _plain_lines(needle: bytes, stream: Any, buffer: bytearray) -> Iterator[tuple[int, bytes]]:
    """``(offset, line)`` of each line of the plain file ``stream`` (unbuffered) that contains ``needle``, newline
    kept; a last line without one too. The file is read into ``buffer``, whole lines searched in place, the
    piece of a line at its end moved to its start before the next read; it grows only for a longer line."""
    view = memoryview(buffer)
    start = 0  # file offset of buffer[0]
    filled = 0  # bytes of the file in buffer
    try:
        while count := stream.readinto(view[filled:]):
            filled += count
            end = buffer.rfind(b"\n", 0, filled) + 1  # search only whole lines; the rest waits for the next read
            if end:
                position = buffer.find(needle, 0, end)
                while position >= 0:
                    first = buffer.rfind(b"\n", 0, position) + 1
                    last = buffer.find(b"\n", position) + 1
                    yield start + first, bytes(view[first:last])
                    position = buffer.find(needle, last, end)
                view[:filled - end] = view[end:filled]
                start += end
                filled -= end
            if filled == len(buffer):  # a line longer than the buffer: make room for more of it
                view.release()
                buffer.extend(bytes(len(buffer)))
                view = memoryview(buffer)
        if buffer.find(needle, 0, filled) >= 0:
            yield start, bytes(view[:filled])
    finally:
        view.release()


def _inflated(stream: Any) -> Iterator[bytes]:
    """The decompressed content of the gzip file ``stream``, ``BLOCK`` bytes at most at a time; concatenated
    gzip members too."""
    inflater, fed, pending = zlib.decompressobj(wbits=31), False, b""
    while True:
        if inflater.eof:  # a next gzip member (``cat a.gz b.gz``), or the end
            pending = inflater.unused_data + pending or stream.read(GZ_INPUT)
            if not pending.strip(b"\0"):  # nothing more, or the zero padding that gzip tolerates
                return
            inflater, fed = zlib.decompressobj(wbits=31), False
        if not pending:
            pending = stream.read(GZ_INPUT)
            if not pending:
                break
        block = inflater.decompress(pending, BLOCK)
        fed, pending = True, inflater.unconsumed_tail
        if block:
            yield block
    if fed and not inflater.eof:
        raise EOFError("compressed file ended before the end-of-stream marker was reached")


def _lines_containing(needle: bytes, blocks: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """``(offset, line)`` of each line that contains ``needle``, newline kept; a last line without one too.

    Each block is searched where it lies; only the line that runs over from one block into the next is put
    together (block + block would copy every byte once more)."""
    carry = b""  # the start of a line that the next block goes on with
    start = 0  # stream offset of ``carry``
    for block in blocks:
        if carry:
            newline = block.find(b"\n") + 1
            if not newline:  # the line goes on past this block too
                carry += block
                continue
            line = carry + block[:newline]
            if needle in line:
                yield start, line
            start += len(line)
            begin = newline
        else:
            begin = 0
        end = block.rfind(b"\n") + 1
        if end > begin:
            position = block.find(needle, begin, end)
            while position >= 0:
                first = block.rfind(b"\n", begin, position) + 1 or begin
                last = block.find(b"\n", position) + 1
                yield start + first - begin, block[first:last]
                position = block.find(needle, last, end)
            start += end - begin
        carry = block[max(end, begin):]
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


class Shape:
    """Where a field preset (``fields:`` in logging.yaml, trackline.logs.presets) keeps what ``trace`` reads.

    Paths are keys into nested objects; ``marker`` is a top-level key that only this preset's lines have.
    ``shown`` are the top-level keys that ``--pretty`` shows in its columns (or never), not as ``key=value``.
    ``trace_prefix``: what comes before the trace ID in its field (GCP's trace is projects/PROJECT/traces/ID).
    """

    __slots__ = ("level", "logger", "marker", "message", "name", "shown", "timestamp", "trace_id", "trace_prefix",
                 "traceback")

    def __init__(self, name: str, marker: str, timestamp: str, level: tuple[str, ...], logger: tuple[str, ...],
                 message: str, traceback: tuple[str, ...], trace_id: tuple[str, ...] = ("trace_id",),
                 trace_prefix: str = "", shown: frozenset[str] = frozenset()) -> None:
        self.name, self.marker, self.timestamp, self.level, self.logger = name, marker, timestamp, level, logger
        self.message, self.traceback, self.trace_id = message, traceback, trace_id
        self.trace_prefix, self.shown = trace_prefix, shown

    def __repr__(self) -> str:
        return f"Shape({self.name!r})"

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

    Files are read by a few threads at once (reading and decompressing release the GIL), the biggest first, each
    keeping only its matches, so memory stays flat whatever the size of the tree.
    """
    bases = list(bases)
    history = split(bases, log_files(bases))  # sources compacted into Parquet are read there (docs/sql.md)
    files = history.json
    scans = _scan_all(request_id.encode(), request_id, [path for _, path in files], since)
    parquet = trace_scans(request_id, history.parquet, since)
    search = Search()
    shipped: set[tuple[Path, bytes]] = set()
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


def _scan_all(needle: bytes, request_id: str, paths: list[Path], since: datetime | None) -> list[_Scan]:
    """``_scan`` of each of ``paths``, in their order, by up to ``READERS`` readers (this thread and a few more),
    each taking the biggest piece of work left: gzipped files count ``GZ_WEIGHT`` times their size."""

    def work(path: Path) -> int:
        try:
            size = os.stat(path).st_size
        except OSError:
            return 0  # _scan says why
        return size * GZ_WEIGHT if path.suffix == ".gz" else size

    scans: list[_Scan | None] = [None] * len(paths)
    todo = iter(sorted(range(len(paths)), key=lambda index: -work(paths[index])))
    failed: list[BaseException] = []

    def reader() -> None:
        buffer = bytearray(BLOCK)  # one per reader, reused for every plain file it reads
        for index in todo:  # shared: next() on a list iterator is atomic under the GIL
            if failed:
                return
            scans[index] = _scan(needle, request_id, paths[index], since, buffer)

    def helper() -> None:
        try:
            reader()
        except BaseException as exc:  # a bug, or memory: raised again in the caller's thread
            failed.append(exc)

    helpers = []
    if min(READERS, len(paths)) > 1:
        import threading

        helpers = [threading.Thread(target=helper, daemon=True) for _ in range(min(READERS, len(paths)) - 1)]
        for thread in helpers:
            thread.start()
    try:
        reader()
    except BaseException as exc:  # Ctrl-C too: the helpers stop after their current file
        failed.append(exc)
        raise
    for thread in helpers:
        thread.join()
    if failed:
        raise failed[0]
    return [scan for scan in scans if scan is not None]


class _Scan:
    """One file's matches, each with its line's bytes (what makes a duplicate), and what it had to skip."""

    __slots__ = ("found", "malformed", "unfinished", "unreadable")

    def __init__(self) -> None:
        self.found: list[tuple[Match, bytes]] = []
        self.malformed = 0
        self.unfinished = 0
        self.unreadable: list[str] = []


#: Why a log file that is a symbolic link is not read (by trace, sql or compact).
LINK_REFUSED = "a symbolic link, which trackline does not follow"
#: How a log host begins each line: its sender's name, the first key. A later ``hostname`` (an app's own, spelled
#: with JSON escapes so that the log host kept it) must not replace it, as ``json.loads`` would (the last of equal
#: keys); DuckDB (``trackline sql``) keeps the first too.
_LOG_HOST_KEY = b'{"hostname":"'


def _scan(needle: bytes, request_id: str, path: Path, since: datetime | None, buffer: bytearray) -> _Scan:
    """One file's matches (not yet sorted or rid of duplicates) and what it had to skip; a plain file is read
    into ``buffer``."""
    scan = _Scan()
    try:
        # O_NOFOLLOW: a link planted in a log folder (by the service's user, to a file only root may read) is
        # never read by trace run as root
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb", buffering=0) as stream:
            gzipped = path.suffix == ".gz"
            lines = _lines_containing(needle, _inflated(stream)) if gzipped else _plain_lines(needle, stream, buffer)
            for offset, raw in lines:
                line = raw.decode("utf-8", errors="replace")
                try:
                    record = json.loads(line)
                    if raw.startswith(_LOG_HOST_KEY):
                        record["hostname"] = raw[len(_LOG_HOST_KEY):raw.index(b'"', len(_LOG_HOST_KEY))].decode()
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
    except OSError as exc:
        scan.unreadable.append(f"{path}: {LINK_REFUSED if exc.errno == errno.ELOOP else exc}")
    except (EOFError, zlib.error) as exc:  # a damaged / half-written .gz
        scan.unreadable.append(f"{path}: {exc}")
    return scan


#: Fields the pretty view shows in its columns or its summary, not again as ``key=value``.
_SHOWN = frozenset({"@timestamp", "level", "logger", "tracking_id", "message", "pid", "loc", "func", "exc_info",
                    "hostname", "request_method", "request_path", "query_string", "status_code", "request_time"})


def pretty(matches: list[Match]) -> list[str]:
    """A compact human view: time (and date, over several days), [hostname,] file, level, logger, then the
    message and the other fields; each line read in its own field preset.

    Each column is as wide as its longest value among ``matches``, so long rotated file names keep it aligned.
    Every value is shown with its control characters escaped (``text.escape``): a value never acts on the
    terminal nor starts a row of its own; a traceback's lines (split at LF only) are indented rows, each escaped.
    """
    if not matches:
        return []
    hosted = any("hostname" in match.record for match in matches)
    days = {match.timestamp.astimezone().date() for match in matches}
    clock = "%H:%M:%S.%f" if len(days) == 1 else "%Y-%m-%d %H:%M:%S.%f"  # the date when the story spans days
    files = [escape(Path(match.source).name) for match in matches]
    views = [_columns(match.record) for match in matches]
    widths = [max(len(view[column]) for view in views) for column in range(3)]
    file_width = max(map(len, files))
    rows = []
    for match, file, (hostname, level, logger) in zip(matches, files, views, strict=True):
        record, form = match.record, shape(match.record)
        when = match.timestamp.astimezone().strftime(clock)[:-3]  # local time: one zone for the merged view
        summary = escape(_summary(record) if form is TRACKLINE else _preset_summary(record, form))
        columns = [when, *([f"{hostname:<{widths[0]}}"] if hosted else []),
                   f"{file:<{file_width}}", f"{level:<{widths[1]}}", f"{logger:<{widths[2]}}", summary]
        rows.append(" ".join(columns).rstrip())
        if traceback := _get(record, form.traceback):
            # its own line breaks (LF only) make indented rows under its line; anything else in it is escaped
            rows.extend("    " + escape(row) for row in str(traceback).rstrip("\n").split("\n"))
    return rows


def _columns(record: dict[str, Any]) -> tuple[str, str, str]:
    """The hostname, level and logger columns of a line (``-`` where it has none)."""
    form = shape(record)
    level, logger = _get(record, form.level), _get(record, form.logger)
    return (escape(str(record.get("hostname", "-"))), "-" if level is None else escape(str(level)),
            "-" if logger is None else escape(str(logger)))


def _summary(record: dict[str, Any]) -> str:
    """The message (for an access line: method, path, status and time), then the fields no column shows."""
    text = str(record.get("message", ""))
    if "status_code" in record:
        query = f"?{record['query_string']}" if record.get("query_string") else ""
        took = f" ({record['request_time']}s)" if record.get("request_time") is not None else ""
        text = f"{record.get('request_method')} {record.get('request_path')}{query} -> {record['status_code']}{took}"
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
