"""``trackline sql``: SQL (DuckDB) over a log directory or a log host's tree, through views whose types never
depend on the data.

Every view reads its JSON files (current, plain rotations, ``.gz`` rotations) with ``read_json_objects`` and
types each field by ``json_transform`` against a declared structure: a value that is not of its column's type
is NULL in that column, never a reason to type the column otherwise. The whole line stays reachable as the
``fields`` JSON column (``fields->>'$.order_id'``). The Parquet history (``trackline compact``,
``reader/history.py``) has the same columns, and each view reads both. DuckDB is an optional extra: this module
imports it only inside ``connect``.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from trackline.reader.history import split
from trackline.reader.text import escape, escape_json

if TYPE_CHECKING:
    import duckdb

INSTALL_HINT = "trackline sql needs DuckDB: pip install 'trackline[sql]'"

#: Every line's fields (the log contract and the W3C trace), typed.
COMMON = {
    "level": "VARCHAR", "logger": "VARCHAR", "tracking_id": "VARCHAR", "message": "VARCHAR", "pid": "BIGINT",
    "trace_id": "VARCHAR", "span_id": "VARCHAR", "parent_span_id": "VARCHAR", "trace_flags": "VARCHAR",
}
CODE = {"loc": "VARCHAR", "func": "VARCHAR", "exc_info": "VARCHAR"}
REQUEST = {
    "remote_addr": "VARCHAR", "protocol": "VARCHAR", "host": "VARCHAR", "request_method": "VARCHAR",
    "request_path": "VARCHAR", "query_string": "VARCHAR", "status_code": "INTEGER", "response_length": "BIGINT",
    "referer": "VARCHAR", "user_agent": "VARCHAR", "request_time": "DOUBLE",
}
TASK = {"task_id": "VARCHAR", "task_name": "VARCHAR", "parent_task_id": "VARCHAR"}
EDGE = {"upstream_addr": "VARCHAR", "upstream_status": "INTEGER", "upstream_response_time": "DOUBLE",
        "client_tracking_id": "VARCHAR"}

#: view -> (the file it reads, its own typed columns after the common ones)
VIEWS: dict[str, tuple[str, dict[str, str]]] = {
    "access": ("access.log", REQUEST),
    "app": ("app.log", CODE),
    "error": ("error.log", CODE),
    "worker": ("worker.log", {**CODE, **TASK}),
    "edge": ("trackline-access.log", {**REQUEST, **EDGE}),
}
#: Every view starts with these (``date``: the UTC date of ``@timestamp``, the history's partition) and ends
#: with ``fields``, the whole line as JSON.
HEAD = {"@timestamp": "TIMESTAMPTZ", "date": "DATE", "hostname": "VARCHAR", "file": "VARCHAR"}
TAIL = {"fields": "JSON"}
#: Where the field presets keep what the typed columns need from them (``trackline trace`` reads the same):
#: the timestamp (gcp ``time``, datadog and otel ``timestamp``) and the trace ID (ecs ``trace.id``, gcp's
#: ``logging.googleapis.com/trace`` path).
PRESET_KEYS = {"time": "TIMESTAMPTZ", "timestamp": "TIMESTAMPTZ", "trace": {"id": "VARCHAR"},
               "logging.googleapis.com/trace": "VARCHAR"}
#: How late a line may be written after its file's rotation time (clock skew, the write between logrotate's
#: rename and rsyslog's reopen): files are pruned by ``--since`` only beyond this margin.
PRUNE_MARGIN = timedelta(hours=2)


def columns(view: str) -> dict[str, str]:
    """The typed columns of ``view``, in order (``lines``: every view's, ``union_by_name``)."""
    if view == "lines":
        merged = dict(HEAD) | COMMON
        for _, own in VIEWS.values():
            merged |= own
        return merged | TAIL
    return HEAD | COMMON | VIEWS[view][1] | TAIL


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def machine_hostname() -> str:
    """This machine's short name: the ``hostname`` of lines in a log directory's own files (not a host folder)."""
    return socket.gethostname().split(".")[0]


def json_select(view: str, files: Sequence[tuple[Path, str]], *, prefer_line_hostname: bool = True,
                fallback_date: date | None = None) -> str:
    """A SELECT of ``view``'s columns from JSON ``files`` (``(path, hostname of its folder)``), one row per line
    that parses; malformed lines (``json IS NULL``) are left out.

    ``hostname`` is the line's own (a log host's lines carry it), else its folder's; with
    ``prefer_line_hostname=False`` always the folder's (the history's partition). ``fallback_date`` is the
    ``date`` of lines without a usable timestamp (the history needs one for every row).
    """
    own = COMMON | VIEWS[view][1]
    structure = {"@timestamp": "TIMESTAMPTZ", "hostname": "VARCHAR", **own, **PRESET_KEYS}
    names = "[" + ", ".join(literal(str(path)) for path, _ in files) + "]"
    folder = "CASE l.filename " + " ".join(f"WHEN {literal(str(path))} THEN {literal(host)}"
                                          for path, host in files) + " END"
    moment = 't."@timestamp"'
    moment = f"coalesce({moment}, t.\"time\", t.\"timestamp\")"
    day = f"CAST(timezone('UTC', {moment}) AS DATE)"
    if fallback_date is not None:
        day = f"coalesce({day}, DATE {literal(fallback_date.isoformat())})"
    hostname = f"coalesce(t.hostname, {folder})" if prefer_line_hostname else folder
    trace_id = ("coalesce(t.trace_id, t.\"trace\".id,"
                " nullif(regexp_extract(t.\"logging.googleapis.com/trace\", '/traces/([^/]+)$', 1), ''))")
    selected = [f"{moment} AS \"@timestamp\"", f"{day} AS date", f"{hostname} AS hostname", "l.filename AS file"]
    for name in own:
        selected.append(f"{trace_id} AS trace_id" if name == "trace_id" else f"t.{quote(name)} AS {quote(name)}")
    selected.append("l.json AS fields")
    return (f"SELECT {', '.join(selected)} FROM (SELECT filename, json, json_transform(json, "
            f"{literal(json.dumps(structure))}) AS t FROM read_json_objects({names}, format='newline_delimited', "
            f"ignore_errors=true, filename=true) WHERE json IS NOT NULL) AS l(filename, json, t)")


def parquet_select(view: str, files: Sequence[Path]) -> str:
    """A SELECT of ``view``'s columns from history ``files`` (``date`` and ``hostname`` from their Hive path);
    rows that keep a malformed line are left out."""
    names = "[" + ", ".join(literal(str(path)) for path in files) + "]"
    selected = ", ".join(f"CAST({quote(name)} AS {kind}) AS {quote(name)}" for name, kind in columns(view).items())
    return (f"SELECT {selected} FROM read_parquet({names}, hive_partitioning=true, union_by_name=true, "
            f"hive_types={{'date': 'DATE', 'hostname': 'VARCHAR'}}) WHERE malformed IS NULL")


def empty_select(view: str) -> str:
    """No rows, with ``view``'s columns and types."""
    return "SELECT " + ", ".join(f"CAST(NULL AS {kind}) AS {quote(name)}" for name, kind in columns(view).items()) \
        + " WHERE false"


@dataclass
class Sources:
    """What one view reads: JSON files with their folders' hostnames, and history Parquet files."""

    json: list[tuple[Path, str]] = field(default_factory=list)
    parquet: list[Path] = field(default_factory=list)
    links: list[Path] = field(default_factory=list)  # log files that are symbolic links: never read


def view_of(base: Path) -> str | None:
    """The view that reads ``base`` (``app.log`` -> ``app``), or None."""
    for view, (name, _) in VIEWS.items():
        if base.name == name:
            return view
    return None


def folder_hostname(base: Path, log_dirs: Iterable[Path]) -> str:
    """The host a base file's lines come from when they do not say: its ``<hostname>/`` folder in a log host's
    tree, else this machine."""
    for log_dir in log_dirs:
        if base.parent.parent == log_dir:
            return base.parent.name
    return machine_hostname()


def rotated_at(path: Path) -> datetime:
    """When ``path`` was last written: logrotate's ``dateext`` seconds (``-%Y%m%d-%s``) in its name, else its
    mtime."""
    for part in reversed(path.name.split("-")):
        stem = part.split(".")[0]
        if stem.isdigit() and len(stem) >= 9:
            return datetime.fromtimestamp(int(stem)).astimezone()
    return datetime.fromtimestamp(path.stat().st_mtime).astimezone()


def partition_date(path: Path) -> date | None:
    """The ``date=`` of a history file's path, or None."""
    for part in path.parts:
        if part.startswith("date="):
            try:
                return date.fromisoformat(part[5:])
            except ValueError:
                return None
    return None


def gather(bases: Sequence[Path], log_dirs: Sequence[Path], since: datetime | None = None,
           until: datetime | None = None) -> dict[str, Sources]:
    """Each view's files among ``bases`` and their rotations, JSON and history, pruned by ``since``/``until``:
    a rotated JSON file last written (by its name, else its mtime) more than ``PRUNE_MARGIN`` before ``since``,
    and history dates outside the range, are not read."""
    from trackline.reader.trace import log_files

    found = split(bases, log_files(bases))
    sources = {view: Sources() for view in VIEWS}
    for base, path in found.json:
        view = view_of(base)
        if view is None:
            continue
        if path.is_symlink():  # DuckDB would follow it (trace opens with O_NOFOLLOW)
            sources[view].links.append(path)
            continue
        if since is not None and path != base:
            try:
                if rotated_at(path) + PRUNE_MARGIN < since:
                    continue
            except OSError:
                continue
        sources[view].json.append((path, folder_hostname(base, log_dirs)))
    first = since.astimezone().date() - timedelta(days=1) if since else None
    last = until.astimezone().date() + timedelta(days=1) if until else None
    for base, path, _ in found.parquet:
        view, day = view_of(base), partition_date(path)
        if view is None or (day and ((first and day < first) or (last and day > last))):
            continue
        sources[view].parquet.append(path)
    return sources


def view_sql(view: str, sources: Sources, since: datetime | None, until: datetime | None) -> str:
    """The body of one view: its JSON and history parts, ``union_by_name``, filtered to [since, until)."""
    parts = []
    if sources.json:
        parts.append(json_select(view, sources.json))
    if sources.parquet:
        parts.append(parquet_select(view, sources.parquet))
    body = " UNION ALL BY NAME ".join(f"({part})" for part in parts) if parts else empty_select(view)
    names = ", ".join(quote(name) for name in columns(view))
    conditions = []
    if since is not None:
        conditions.append(f"\"@timestamp\" >= TIMESTAMPTZ {literal(since.isoformat())}")
    if until is not None:
        conditions.append(f"\"@timestamp\" < TIMESTAMPTZ {literal(until.isoformat())}")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"SELECT {names} FROM ({body}){where}"


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that never fetches an extension: JSON, Parquet and ICU are built into the wheel.

    Raises ImportError (with ``INSTALL_HINT``) without DuckDB."""
    try:
        import duckdb
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})


def create_views(con: duckdb.DuckDBPyConnection, sources: dict[str, Sources], since: datetime | None = None,
                 until: datetime | None = None) -> None:
    """``access``, ``app``, ``error``, ``worker``, ``edge``, and ``lines`` (all of them) on ``con``."""
    for view in VIEWS:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS {view_sql(view, sources[view], since, until)}")
    union = " UNION ALL BY NAME ".join(f"SELECT * FROM {view}" for view in VIEWS)
    names = ", ".join(quote(name) for name in columns("lines"))
    con.execute(f"CREATE OR REPLACE TEMP VIEW lines AS SELECT {names} FROM ({union})")


def skipped_lines(con: duckdb.DuckDBPyConnection, sources: dict[str, Sources], views: Iterable[str]) -> int:
    """How many lines of ``views``' files the views leave out: JSON lines that do not parse, and history rows
    that keep such a line (``malformed``)."""
    counted = set()
    for view in views:
        counted |= {view} if view in VIEWS else set(VIEWS) if view == "lines" else set()
    json_files = [path for view in sorted(counted) for path, _ in sources[view].json]
    parquet_files = [path for view in sorted(counted) for path in sources[view].parquet]
    skipped = 0
    if json_files:
        names = "[" + ", ".join(literal(str(path)) for path in json_files) + "]"
        row = con.execute(f"SELECT count(*) FROM read_json_objects({names}, format='newline_delimited', "
                          "ignore_errors=true) WHERE json IS NULL").fetchone()
        skipped += row[0] if row else 0
    if parquet_files:
        names = "[" + ", ".join(literal(str(path)) for path in parquet_files) + "]"
        row = con.execute(f"SELECT count(*) FROM read_parquet({names}, union_by_name=true) "
                          "WHERE malformed IS NOT NULL").fetchone()
        skipped += row[0] if row else 0
    return skipped


def referenced_views(con: duckdb.DuckDBPyConnection, query: str) -> set[str]:
    """The views ``query`` reads (all of them when DuckDB cannot tell)."""
    try:
        names = con.get_table_names(query, qualified=False)
    except Exception as exc:
        if not is_duckdb_error(exc):
            raise
        return {"lines"}
    return {name for name in names if name in VIEWS or name == "lines"}


def one_line(error: BaseException) -> str:
    """DuckDB's (multi-line) message as one line."""
    return " ".join(str(error).split())


# -- output ------------------------------------------------------------------------------------------------------


def _plain(value: Any, kind: str) -> Any:
    """A value as JSON lines carry it: times in ISO 8601, a JSON column as the JSON it holds."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds" if value.microsecond % 1000 == 0 else "microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value) if value % 1 else int(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="backslashreplace")
    if isinstance(value, timedelta):
        return value.total_seconds()
    if kind == "JSON" and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, dict | list | tuple | str | int | float | bool) or value is None:
        return value
    return str(value)


def _text(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="milliseconds" if value.microsecond % 1000 == 0 else "microseconds")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="backslashreplace")
    return str(value)


def write_table(out: IO[str], names: list[str], cells: list[list[str]], max_width: int = 60) -> int:
    """An aligned table (numbers to the right), each cell cut to ``max_width`` characters; the row count. Control
    characters in a name or a cell are escaped (``text.escape``): a CR or LF shows as ``\\r`` / ``\\n``."""
    names = [escape(name) for name in names]
    cut = [[cell if len(cell) <= max_width else cell[:max_width - 1] + "…" for cell in map(escape, row)]
           for row in cells]
    widths = [max([len(name), *(len(row[i]) for row in cut)]) for i, name in enumerate(names)]
    right = [bool(cut) and all(_looks_numeric(row[i]) for row in cut) for i in range(len(names))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(value.rjust(width) if r else value.ljust(width)
                         for value, width, r in zip(values, widths, right, strict=True)).rstrip()

    out.write(line(names) + "\n")
    out.write("  ".join("-" * width for width in widths) + "\n")
    for row in cut:
        out.write(line(row) + "\n")
    out.write(f"({len(cut)} row{'s' if len(cut) != 1 else ''})\n")
    return len(cut)


def _looks_numeric(text: str) -> bool:
    if text == "NULL":
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


#: What a spreadsheet reads as the start of a formula in a cell (OWASP's "CSV injection").
_FORMULA = ("=", "+", "-", "@")


def write_csv(out: IO[str], names: list[str], rows: Iterable[Sequence[Any]]) -> int:
    """CSV, one row a line: a value's control characters (a CR or LF among them) are escaped (``text.escape``),
    so no value starts a row or acts on a terminal, and a text that a spreadsheet would run as a formula
    (``=HYPERLINK(...)``, ``+``, ``-``, ``@``) starts with a ``'``, which shows it as text."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([_cell(name) for name in names])
    count = 0
    for row in rows:
        writer.writerow(["" if value is None else _cell(value) for value in row])
        count += 1
    return count


def _cell(value: Any) -> str:
    if not isinstance(value, str):
        return escape(_text(value))
    text = escape(value)
    return "'" + text if text.startswith(_FORMULA) else text


def write_json_lines(out: IO[str], names: list[str], kinds: list[str], rows: Iterable[Sequence[Any]]) -> int:
    count = 0
    for row in rows:
        record = {name: _plain(value, kind) for name, kind, value in zip(names, kinds, row, strict=True)}
        out.write(escape_json(json.dumps(record, ensure_ascii=False, default=str)) + "\n")  # no raw DEL or C1
        count += 1
    return count


def _batches(cursor: duckdb.DuckDBPyConnection, size: int = 2048) -> Iterator[tuple[Any, ...]]:
    while batch := cursor.fetchmany(size):
        yield from batch


@dataclass
class Outcome:
    rows: int
    skipped: int
    links: list[Path] = field(default_factory=list)


def run(query: str, bases: Sequence[Path], log_dirs: Sequence[Path], *, since: datetime | None = None,
        until: datetime | None = None, output: str = "table", out: IO[str] | None = None) -> Outcome:
    """Run ``query`` over the views of ``bases`` and write its result to ``out`` as ``output`` (table, csv, json).

    Raises ImportError without DuckDB, duckdb.Error for a query DuckDB refuses."""
    out = out or sys.stdout
    con = connect()
    try:
        sources = gather(bases, log_dirs, since, until)
        create_views(con, sources, since, until)
        cursor = con.execute(query)
        links = [path for view in sources.values() for path in view.links]
        if cursor.description is None:
            return Outcome(0, 0, links)
        names = [column[0] for column in cursor.description]
        kinds = [str(column[1]) for column in cursor.description]
        if output == "csv":
            rows = write_csv(out, names, _batches(cursor))
        elif output == "json":
            rows = write_json_lines(out, names, kinds, _batches(cursor))
        else:
            rows = write_table(out, names, [[_text(value) for value in row] for row in cursor.fetchall()])
        out.flush()
        return Outcome(rows, skipped_lines(con, sources, referenced_views(con, query)), links)
    finally:
        con.close()


def default_log_dirs(bases: Sequence[Path]) -> list[Path]:
    """The folders of ``bases`` (``--log-dir`` gives them directly)."""
    return list(dict.fromkeys(Path(os.path.dirname(base)) for base in bases))


def is_duckdb_error(exc: BaseException) -> bool:
    """Whether ``exc`` is DuckDB's (a refused query, a damaged file), without importing DuckDB to ask."""
    return type(exc).__module__.split(".")[0] in ("duckdb", "_duckdb")


def _moment(option: str, value: str | None) -> datetime | None:
    from trackline.reader.trace import parse_since

    if not value:
        return None
    try:
        return parse_since(value)
    except ValueError as exc:
        raise ValueError(str(exc).replace("--since", option)) from None


def run_command(args: Any, log_bases: Callable[[Any], list[Path]]) -> int:
    """``trackline sql QUERY``: 0 when the query ran, 1 when DuckDB refused it (one line on stderr), 2 when it
    could not run (no DuckDB, no logs, a bad ``--since``)."""
    from trackline.config import ConfigError

    try:
        since, until = _moment("--since", args.since), _moment("--until", args.until)
        bases = log_bases(args)
    except (ValueError, ConfigError) as exc:
        print(f"trackline: {exc}", file=sys.stderr)
        return 2
    log_dirs = [Path(directory) for directory in args.log_dir] if args.log_dir else default_log_dirs(bases)
    missing = [str(directory) for directory in log_dirs if not directory.is_dir()]
    if missing:
        print(f"trackline: no such log directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        outcome = run(args.query, bases, log_dirs, since=since, until=until, output=args.output)
    except ImportError as exc:
        print(f"trackline: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not is_duckdb_error(exc):
            raise
        print(f"trackline: sql: {escape(one_line(exc))}", file=sys.stderr)  # DuckDB quotes the values it refused
        return 1
    from trackline.reader.trace import LINK_REFUSED

    for path in outcome.links:
        print(f"trackline: skipped unreadable file {escape(str(path))}: {LINK_REFUSED}", file=sys.stderr)
    if outcome.skipped:
        print(f"trackline: skipped {outcome.skipped} malformed line(s) (not JSON)", file=sys.stderr)
    return 0
