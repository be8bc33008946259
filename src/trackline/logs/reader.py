"""Find every log line of one tracking ID across log files, rotated and gzipped ones included."""

from __future__ import annotations

import glob
import gzip
import json
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any

LOG_NAMES = ("app.log", "access.log", "error.log", "worker.log")
_RELATIVE = re.compile(r"(\d+)\s*([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True, order=True)
class Match:
    """One matching line, ordered by its timestamp (then where it was found)."""

    timestamp: datetime
    source: str
    number: int
    line: str = field(compare=False)
    record: dict[str, Any] = field(compare=False)


@dataclass
class Search:
    """What a search found and what it had to skip."""

    matches: list[Match] = field(default_factory=list)
    malformed: int = 0
    unfinished: int = 0  # a file's last line, not yet JSON and with no newline: still being written
    unreadable: list[str] = field(default_factory=list)


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``--since``: an ISO 8601 time (naive means local) or a span back from now like ``15m``, ``2h``, ``1d``."""
    relative = _RELATIVE.fullmatch(value.strip())
    if relative:
        now = now or datetime.now(timezone.utc)
        return now - timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--since {value!r}: expected an ISO 8601 time or a span such as 30s, 15m, 2h, 1d") from None
    return moment if moment.tzinfo else moment.astimezone()


def log_files(bases: Iterable[Path]) -> list[Path]:
    """Each base file and its rotations (``app.log``, ``app.log.1``, ``app.log-20260101.gz``, ...) in order."""
    files: list[Path] = []
    for base in bases:
        name = glob.escape(base.name)
        rotations = (*base.parent.glob(f"{name}.*"), *base.parent.glob(f"{name}-*"))  # not app.logger
        if base.is_file():
            files.append(base)
        files.extend(sorted(p for p in rotations if p.is_file()))
    return list(dict.fromkeys(files))


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open(encoding="utf-8", errors="replace")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with _open(path) as stream:
        yield from enumerate(stream, 1)


def find(tracking_id: str, bases: Iterable[Path], since: datetime | None = None) -> Search:
    """Stream ``bases`` and their rotations (``log_files``), keeping only lines whose ``tracking_id`` is
    ``tracking_id`` (and not before ``since``).

    Lines are read one at a time; only lines containing the ID text are parsed, so a malformed line is
    counted when it could have been a match. A file's last line that is not JSON yet and has no newline is
    counted apart as unfinished: a reader can see part of a worker's write to a live file.
    """
    search = Search()
    for path in log_files(bases):
        try:
            for number, line in _lines(path):
                if tracking_id not in line:
                    continue
                try:
                    record = json.loads(line)
                    moment = datetime.fromisoformat(record["@timestamp"])
                    if moment.tzinfo is None:
                        moment = moment.astimezone()
                except (ValueError, KeyError, TypeError):  # not JSON, not an object, or no usable timestamp
                    if line.endswith("\n"):
                        search.malformed += 1
                    else:
                        search.unfinished += 1
                    continue
                if record.get("tracking_id") != tracking_id or (since and moment < since):
                    continue
                search.matches.append(Match(moment, str(path), number, line.rstrip("\n"), record))
        except (OSError, EOFError, zlib.error) as exc:  # unreadable, or a damaged / half-written .gz
            search.unreadable.append(f"{path}: {exc}")
    search.matches.sort()
    return search


def pretty(match: Match) -> str:
    """A compact human view of one line."""
    record = match.record
    source = Path(match.source).name
    when = match.timestamp.astimezone().strftime("%H:%M:%S.%f")[:-3]  # one zone for the merged view
    text = record.get("message", "")
    if "status_code" in record:
        text = f"{record.get('request_method')} {record.get('request_path')} -> {record.get('status_code')}" \
               f" ({record.get('request_time')}s)"
    lines = [f"{when} {source:<22} {record.get('level', '-'):<7} {record.get('logger', '-'):<20} {text}"]
    if record.get("exc_info"):
        lines.extend("    " + row for row in str(record["exc_info"]).splitlines())
    return "\n".join(lines)
