"""The log host's history as Parquet (``trackline compact``): where it lives and which lines it holds.

A log directory ``D`` (a log host's ``/var/log/trackline-central``, or one host's ``/var/log/trackline``) keeps
its history in ``D/parquet/``, Hive style::

    D/parquet/date=2026-12-07/hostname=web-1/access.log-20261207-1765100000.parquet
    D/parquet/_compacted/web-1/access.log-20261207-1765100000.gz.json     the commit marker of that source

One rotated JSON file (a *source*) becomes one Parquet file per UTC date its lines fall on, named after the
source. A source is in the history only once its marker exists: ``compact`` writes the marker last, after
every Parquet file of the source is written, fsynced, read back with the source's line count and renamed
into place. Readers (``trace``, ``sql``) go by the markers alone: a committed source whose Parquet files are
all there is read from Parquet and its JSON file, if still there, is skipped; Parquet files of a source
without a marker (a run killed half way) are ignored. So each line is read once, from one place.

This module imports no DuckDB: ``trace`` calls ``split`` on every run, and reads Parquet (with DuckDB) only
when there is some.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: `trackline trace` starts at once
if TYPE_CHECKING:
    from typing import Any

#: The history's folder inside a log directory; its markers' folder and its scratch folder inside that.
PARQUET_DIR = "parquet"
MARKERS = "_compacted"
STAGING = ".staging"
MARKER_SUFFIX = ".json"


class Commit:
    """One compacted source, as its marker says: paths relative to the log directory ``log_dir``. (A plain class:
    dataclasses would cost `trackline trace` its start-up.)"""

    __slots__ = ("base", "files", "log_dir", "rows", "source")

    def __init__(self, log_dir: Path, source: str, base: str, files: tuple[str, ...], rows: int) -> None:
        self.log_dir = log_dir
        self.source = source  # web-1/access.log-20261207-1765100000.gz
        self.base = base  # web-1/access.log
        self.files = files  # parquet/date=.../hostname=web-1/access.log-20261207-1765100000.parquet, ...
        self.rows = rows

    @property
    def source_path(self) -> Path:
        return self.log_dir / self.source

    @property
    def base_path(self) -> Path:
        return self.log_dir / self.base

    @property
    def paths(self) -> list[Path]:
        return [self.log_dir / name for name in self.files]

    def complete(self) -> bool:
        """Whether every Parquet file of the source is there (retention may have removed old dates)."""
        return all(path.is_file() for path in self.paths)

    def to_json(self) -> bytes:
        return (json.dumps({"source": self.source, "base": self.base, "files": list(self.files), "rows": self.rows},
                           indent=1) + "\n").encode()


def marker_path(log_dir: Path, source: str) -> Path:
    """The commit marker of ``source`` (relative to ``log_dir``)."""
    return log_dir / PARQUET_DIR / MARKERS / f"{source}{MARKER_SUFFIX}"


def read_commits(log_dir: Path) -> list[Commit]:
    """Every commit marker under ``log_dir/parquet``; unreadable or half-written ones (``*.tmp``) are not
    commits."""
    markers = log_dir / PARQUET_DIR / MARKERS
    if not markers.is_dir():
        return []
    commits = []
    for directory, _, names in os.walk(markers):
        for name in sorted(names):
            if not name.endswith(MARKER_SUFFIX):
                continue
            try:
                data = json.loads(Path(directory, name).read_bytes())
                commits.append(Commit(log_dir, data["source"], data["base"], tuple(data["files"]), int(data["rows"])))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # not ours, or damaged: its source stays JSON
    return sorted(commits, key=lambda commit: commit.source)


def log_dirs_of(bases: Iterable[Path]) -> list[Path]:
    """The log directories that ``bases`` (``D/app.log``, ``D/<host>/app.log``) belong to and that have a
    Parquet history."""
    candidates: dict[Path, None] = {}
    for base in bases:
        for directory in (base.parent, base.parent.parent):
            candidates.setdefault(directory)
    return [directory for directory in candidates if (directory / PARQUET_DIR / MARKERS).is_dir()]


class Split:
    """What to read for a set of base files: JSON files ``(base, file)`` and Parquet files ``(base, file,
    source)``, each line in exactly one of them."""

    __slots__ = ("json", "parquet")

    def __init__(self, json: list[tuple[Path, Path]]) -> None:
        self.json = json
        self.parquet: list[tuple[Path, Path, Path]] = []


def split(bases: Iterable[Path], files: list[tuple[Path, Path]]) -> Split:
    """``files`` (``trace.log_files(bases)``) without the sources that the Parquet history holds, and the
    history's Parquet files of ``bases``.

    A committed source whose Parquet files are all there is read from Parquet; one whose files are partly gone
    (retention) is read from JSON while its JSON file is there, else from what is left of its Parquet.
    """
    bases = list(bases)
    wanted = {os.path.abspath(base) for base in bases}
    found = Split(list(files))
    skipped: set[str] = set()
    for log_dir in log_dirs_of(bases):
        for commit in read_commits(log_dir):
            base = commit.base_path
            if os.path.abspath(base) not in wanted:
                continue
            source_there = commit.source_path.is_file()
            if commit.complete():
                skipped.add(os.path.abspath(commit.source_path))
            elif source_there:
                continue
            found.parquet += [(base, path, commit.source_path) for path in commit.paths if path.is_file()]
    if skipped:
        found.json = [(base, path) for base, path in found.json if os.path.abspath(path) not in skipped]
    return found


def trace_scans(request_id: str, parquet: list[tuple[Path, Path, Path]], since: datetime | None) -> list[Any]:
    """``trace``'s scans of the history: ``((base, source), scan)`` per source file, each scan holding the lines
    whose ``tracking_id`` or trace ID is ``request_id`` (read in their field preset, as ``trace`` reads JSON),
    each with the bytes of its line (what makes a duplicate). Without DuckDB, one unreadable entry that says
    how to install it."""
    from trackline.reader.trace import Match, _moment, _Scan, shape

    if not parquet:
        return []
    first = since.astimezone(UTC).date() - timedelta(days=1) if since else None
    wanted = [(base, path, source) for base, path, source in parquet
              if not (first and (day := _partition_day(path)) and day < first)]
    scans: dict[Path, tuple[Path, _Scan]] = {}
    for base, _, source in wanted:
        scans.setdefault(source, (base, _Scan()))
    try:
        from trackline.reader.sql import connect, literal
        con = connect()
    except ImportError as exc:
        if wanted:
            base, scan = next(iter(scans.values()))
            scan.unreadable.append(f"{len(wanted)} Parquet file(s) of the history under {wanted[0][1].parents[3]}:"
                                   f" {exc}")
        return [((base, source), scan) for source, (base, scan) in scans.items()]
    sources = {str(path): source for _, path, source in wanted}
    try:
        if wanted:
            names = "[" + ", ".join(literal(str(path)) for _, path, _ in wanted) + "]"
            # one filter per column, each pushed into the scan: only the ID columns are read, and `fields` only
            # for the rows that match (an OR of two columns would read every column of every row)
            columns = (f"SELECT filename, file_row_number, CAST(fields AS VARCHAR) FROM read_parquet({names},"
                    " filename=true, file_row_number=true, union_by_name=true) WHERE malformed IS NULL AND ")
            rows = con.execute(f"{columns} tracking_id = $id UNION {columns} trace_id = $id",
                               {"id": request_id}).fetchall()
        else:
            rows = []
    finally:
        con.close()
    for filename, number, line in rows:
        source = sources[filename]
        _, scan = scans[source]
        try:
            record = json.loads(line)
            form = shape(record)
            moment = _moment(record, form)
        except (ValueError, KeyError, TypeError):
            scan.malformed += 1
            continue
        if request_id in (record.get("tracking_id"), form.trace(record)) and not (since and moment < since):
            scan.found.append((Match(moment, str(source), number, line, record), line.encode()))
    return [((base, source), scan) for source, (base, scan) in scans.items()]


def _partition_day(path: Path) -> date | None:
    for part in path.parts:
        if part.startswith("date="):
            try:
                return date.fromisoformat(part.removeprefix("date="))
            except ValueError:
                return None
    return None
