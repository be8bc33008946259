"""``trackline compact``: a log directory's rotated JSON files into its Parquet history, then retention.

For each finished rotation (a ``.gz`` that logrotate has written to its end) that has no commit marker yet, in
this order (``reader/history.py`` has the layout):

1. count the source's lines with zlib, independently of DuckDB;
2. stage: DuckDB writes the typed rows (``reader/sql.py``'s columns, ``fields`` the whole line, a malformed
   line kept as bytes in ``malformed``) as zstd Parquet, one file per UTC date, into ``parquet/.staging/``;
3. fsync every staged file and folder, and read the files back: their row count must be the line count;
4. publish: rename each staged file to its place under ``date=D/hostname=H/`` (same file system: atomic),
   fsync the folders;
5. commit: write the marker (a temporary file, fsynced, renamed, folder fsynced).

Until step 5 a source is not in the history: readers read its JSON file and ignore any of its Parquet files,
and a rerun does steps 1-5 again, overwriting what a killed run left (the same names, the same content). The
source is deleted only by retention, only once committed, and only after its Parquet files' row counts are
checked against the marker again. Runs take a lock, so two never work at once.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import shutil
import sys
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trackline.reader.history import PARQUET_DIR, STAGING, Commit, marker_path, read_commits
from trackline.reader.sql import (
    columns,
    connect,
    folder_hostname,
    json_select,
    literal,
    quote,
    rotated_at,
    view_of,
)

if TYPE_CHECKING:
    import duckdb

#: zstd level of the Parquet files (DuckDB's default is 3; 9 gives about a tenth less for twice the CPU).
ZSTD_LEVEL = 9
LOCK = ".lock"


class CompactionError(Exception):
    """One source could not be compacted; it stays JSON (the message says why)."""


@dataclass
class Report:
    """What a run did."""

    compacted: list[Commit] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    deleted_json: list[Path] = field(default_factory=list)
    deleted_dates: list[Path] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # sources retention would delete but may not (and why)

    @property
    def rows(self) -> int:
        return sum(commit.rows for commit in self.compacted)


#: Called with a step's name after each step (tests stop a run there, as a kill would).
Checkpoint = Callable[[str], None]


def _nothing(step: str) -> None:
    return None


def finished_rotations(log_dir: Path) -> list[tuple[Path, Path]]:
    """``(base, source)``: the ``.gz`` rotations of each base file of ``log_dir`` (and its host folders) that
    logrotate has finished (no uncompressed twin left: ``compress`` writes the ``.gz``, then removes it)."""
    from trackline.reader.trace import directory_bases, log_files

    found = []
    for base, path in log_files(directory_bases(log_dir)):
        if path != base and path.name.endswith(".gz") and not path.with_suffix("").exists() and not path.is_symlink():
            found.append((base, path))
    return found


def count_lines(path: Path) -> int:
    """The non-empty lines of ``path`` (gzip or not), counted with zlib and ``bytes.split``, not DuckDB: the
    count that DuckDB's rows are checked against."""
    lines, carry = 0, b""
    with path.open("rb") if path.suffix != ".gz" else gzip.open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            parts = (carry + block).split(b"\n")
            carry = parts.pop()
            lines += len(parts) - parts.count(b"")
    return lines + (1 if carry else 0)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as file:
        file.write(content)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    _fsync(path.parent)


def malformed_lines(path: Path) -> list[bytes]:
    """The lines of ``path`` that are not JSON (what DuckDB's ``read_json_objects`` leaves NULL), as bytes."""
    bad = []
    with path.open("rb") if path.suffix != ".gz" else gzip.open(path, "rb") as stream:
        for raw in stream:
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            try:
                json.loads(line.decode("utf-8"))
            except ValueError:
                bad.append(line)
    return bad


def _history_select(view: str, source: Path, host: str, fallback: date, with_malformed: bool) -> str:
    """The rows of one source as the history stores them: the view's columns (but ``date`` and ``hostname``,
    the partition), ``malformed`` NULL; with ``with_malformed``, the lines in the temp table ``malformed_lines``
    as rows of their own."""
    typed = json_select(view, [(source, host)], prefer_line_hostname=False, fallback_date=fallback)
    names = list(columns(view))
    rows = f"SELECT {', '.join(quote(name) for name in names)}, CAST(NULL AS BLOB) AS malformed FROM ({typed})"
    if not with_malformed:
        return rows
    nulls = ", ".join(
        f"DATE {literal(fallback.isoformat())} AS date" if name == "date" else
        f"{literal(host)} AS hostname" if name == "hostname" else
        f"{literal(str(source))} AS file" if name == "file" else
        f"CAST(NULL AS {kind}) AS {quote(name)}"
        for name, kind in columns(view).items())
    return f"{rows} UNION ALL SELECT {nulls}, line AS malformed FROM malformed_lines"


def _parquet_name(source: Path) -> str:
    name = source.name.removesuffix(".gz")
    return f"{name}.parquet"


def compact_source(con: duckdb.DuckDBPyConnection, log_dir: Path, base: Path, source: Path,
                   checkpoint: Checkpoint = _nothing) -> Commit:
    """Steps 1-5 for one source (module docstring); raises CompactionError when a count does not match."""
    view = view_of(base)
    if view is None:
        raise CompactionError(f"{source}: not a trackline log file")
    relative, relative_base = source.relative_to(log_dir), base.relative_to(log_dir)
    root = log_dir / PARQUET_DIR
    host = folder_hostname(base, [log_dir])
    fallback = rotated_at(source).astimezone(UTC).date()
    stage = root / STAGING / str(relative).replace("/", "%")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)

    lines = count_lines(source)  # 1
    checkpoint("counted")
    row = con.execute(f"SELECT count(*), count(*) FILTER (WHERE json IS NULL) FROM read_json_objects("
                      f"{literal(str(source))}, format='newline_delimited', ignore_errors=true)").fetchone()
    parsed, unparsed = row if row else (0, 0)
    malformed = malformed_lines(source) if unparsed else []
    if len(malformed) != unparsed or parsed != lines:
        raise CompactionError(f"{relative}: {lines} lines, DuckDB reads {parsed} with {unparsed} malformed and"
                              f" Python {len(malformed)}: left as JSON")
    if malformed:
        con.execute("CREATE OR REPLACE TEMP TABLE malformed_lines (line BLOB)")
        con.executemany("INSERT INTO malformed_lines VALUES (?)", [[line] for line in malformed])
    query = _history_select(view, source, host, fallback, bool(malformed))
    written = con.execute(f"COPY ({query}) TO {literal(str(stage))} (FORMAT parquet, COMPRESSION zstd, "
                          f"COMPRESSION_LEVEL {ZSTD_LEVEL}, PARTITION_BY (date, hostname), OVERWRITE)").fetchone()
    checkpoint("staged")  # 2

    staged = sorted(stage.rglob("*.parquet"))
    for path in staged:
        _fsync(path)
    for directory in sorted({path.parent for path in staged} | {stage}, key=lambda p: -len(p.parts)):
        _fsync(directory)
    read_back = 0
    if staged:
        names = "[" + ", ".join(literal(str(path)) for path in staged) + "]"
        counted = con.execute(f"SELECT count(*) FROM read_parquet({names})").fetchone()
        read_back = counted[0] if counted else 0
    if not (written and written[0] == read_back == lines):
        raise CompactionError(f"{relative}: {lines} lines, {written[0] if written else 0} rows written,"
                              f" {read_back} read back: left as JSON")
    checkpoint("verified")  # 3

    final: list[str] = []
    for path in staged:
        partition = path.parent.relative_to(stage)  # date=2026-12-07/hostname=web-1
        name = _parquet_name(source)
        if path.name != "data_0.parquet":  # a partition DuckDB split into several files
            name = name.replace(".parquet", f".{path.stem}.parquet")
        target = root / partition / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        _fsync(target.parent)
        final.append(str(target.relative_to(log_dir)))
        checkpoint("published")  # 4
    commit = Commit(log_dir, str(relative), str(relative_base), tuple(final), lines)
    _write_atomically(marker_path(log_dir, str(relative)), commit.to_json())
    checkpoint("committed")  # 5
    shutil.rmtree(stage, ignore_errors=True)
    return commit


def parquet_rows(con: duckdb.DuckDBPyConnection, paths: list[Path]) -> int:
    """The rows of ``paths`` by their Parquet footers."""
    if not paths:
        return 0
    names = "[" + ", ".join(literal(str(path)) for path in paths) + "]"
    row = con.execute(f"SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata({names})").fetchone()
    return int(row[0]) if row else 0


def apply_retention(con: duckdb.DuckDBPyConnection, log_dir: Path, keep_json_days: int, keep_parquet_days: int,
                    now: datetime, report: Report, checkpoint: Checkpoint = _nothing) -> None:
    """Delete compacted sources rotated more than ``keep_json_days`` ago (once their Parquet files hold the rows
    the marker says), dates of the history older than ``keep_parquet_days`` (0: keep them all), and markers
    left with neither source nor Parquet."""
    json_limit = now - timedelta(days=keep_json_days)
    for commit in read_commits(log_dir):
        source = commit.source_path
        if not source.is_file() or rotated_at(source) >= json_limit:
            continue
        if not commit.complete():
            report.kept.append(f"{commit.source}: some of its Parquet files are missing")
            continue
        rows = parquet_rows(con, commit.paths)
        if rows != commit.rows:
            report.kept.append(f"{commit.source}: its Parquet files hold {rows} rows, its marker says {commit.rows}")
            continue
        source.unlink()
        _fsync(source.parent)
        report.deleted_json.append(source)
        checkpoint("deleted-json")
    root = log_dir / PARQUET_DIR
    if keep_parquet_days > 0:
        oldest = (now.astimezone(UTC) - timedelta(days=keep_parquet_days)).date()
        for directory in sorted(root.glob("date=*")):
            try:
                day = date.fromisoformat(directory.name.removeprefix("date="))
            except ValueError:
                continue
            if day < oldest:
                shutil.rmtree(directory)
                report.deleted_dates.append(directory)
                checkpoint("deleted-date")
    for commit in read_commits(log_dir):
        if not commit.source_path.exists() and not any(path.exists() for path in commit.paths):
            marker_path(log_dir, commit.source).unlink(missing_ok=True)


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with (root / LOCK).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CompactionError(f"another trackline compact is working on {root}") from None
        yield


def compact(log_dir: Path, keep_json_days: int = 7, keep_parquet_days: int = 0, now: datetime | None = None,
            checkpoint: Checkpoint = _nothing) -> Report:
    """Compact every finished rotation of ``log_dir`` that is not yet in its history, then apply retention.

    Raises ImportError without DuckDB, CompactionError when another run holds the lock."""
    log_dir = Path(os.path.abspath(log_dir))
    now = now or datetime.now(UTC)
    report = Report()
    root = log_dir / PARQUET_DIR
    con = connect()
    try:
        with _locked(root):
            committed = {commit.source for commit in read_commits(log_dir)}
            staging = root / STAGING
            if staging.is_dir():  # what a killed run staged: redone below if still needed
                shutil.rmtree(staging)
            for base, source in finished_rotations(log_dir):
                if str(source.relative_to(log_dir)) in committed:
                    continue
                try:
                    report.compacted.append(compact_source(con, log_dir, base, source, checkpoint))
                except CompactionError as exc:
                    report.failed.append(str(exc))
                except (OSError, EOFError, zlib.error) as exc:  # unreadable, or a damaged .gz
                    report.failed.append(f"{source.relative_to(log_dir)}: {exc}")
                except Exception as exc:  # a DuckDB error on one file (a damaged .gz): the others go on
                    if type(exc).__module__.split(".")[0] not in ("duckdb", "_duckdb"):
                        raise
                    report.failed.append(f"{source.relative_to(log_dir)}: {' '.join(str(exc).split())}")
            apply_retention(con, log_dir, keep_json_days, keep_parquet_days, now, report, checkpoint)
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        con.close()
    return report


def run_command(args: Any) -> int:
    """``trackline compact``: 0 when every finished rotation is in the history, 1 when some could not be (each
    said on stderr, left as JSON for the next run) or another run holds the lock, 2 when it cannot run."""
    if args.keep_json_days < 0 or args.keep_parquet_days < 0:
        print("trackline: --keep-json-days and --keep-parquet-days must be 0 or more", file=sys.stderr)
        return 2
    if 0 < args.keep_parquet_days < args.keep_json_days:
        print("trackline: --keep-parquet-days must be 0 (keep all) or at least --keep-json-days", file=sys.stderr)
        return 2
    log_dir = Path(args.log_dir)
    if not log_dir.is_dir():
        print(f"trackline: no such log directory: {log_dir}", file=sys.stderr)
        return 2
    try:
        report = compact(log_dir, args.keep_json_days, args.keep_parquet_days)
    except ImportError as exc:
        print(f"trackline: {exc}".replace("trackline sql needs", "trackline compact needs"), file=sys.stderr)
        return 2
    except CompactionError as exc:
        print(f"trackline: {exc}", file=sys.stderr)
        return 1
    root = log_dir / PARQUET_DIR
    print(f"trackline: compacted {len(report.compacted)} file(s), {report.rows} line(s), into {root}")
    if report.deleted_json:
        print(f"trackline: deleted {len(report.deleted_json)} compacted rotation(s) older than"
              f" {args.keep_json_days} day(s)")
    if report.deleted_dates:
        print(f"trackline: deleted {len(report.deleted_dates)} day(s) of history older than"
              f" {args.keep_parquet_days} day(s)")
    for note in report.kept:
        print(f"trackline: kept {note}", file=sys.stderr)
    for failure in report.failed:
        print(f"trackline: not compacted: {failure}", file=sys.stderr)
    return 1 if report.failed else 0
