"""Log trees written by a test (a log host's ``<hostname>/<file>`` folders, rotations plain and gzipped), and
running ``trackline sql`` / ``trackline compact`` on them: for tests/*/test_sql*.py and test_compact*.py."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from support.paths import TRACKLINE

#: 2026-12-07 00:00 UTC, in seconds: the rotations' ``dateext`` times are counted from it.
EPOCH = int(datetime(2026, 12, 7, tzinfo=UTC).timestamp())


def access_line(moment: datetime, tracking_id: str, hostname: str | None = "web-1", **fields: Any) -> dict[str, Any]:
    """A contract-shaped access line (as a log host stores it when ``hostname`` is given)."""
    record: dict[str, Any] = {} if hostname is None else {"hostname": hostname}
    record |= {
        "@timestamp": moment.isoformat(timespec="milliseconds"), "level": "INFO", "logger": "gunicorn.access",
        "tracking_id": tracking_id, "message": "GET /api/orders 200", "pid": 4242, "remote_addr": "10.0.0.7",
        "protocol": "HTTP/1.1", "host": "api.example.com", "request_method": "GET", "request_path": "/api/orders",
        "query_string": "", "status_code": 200, "response_length": 57, "referer": None, "user_agent": "t/1",
        "request_time": 0.012, "trace_id": uuid.uuid4().hex, "span_id": uuid.uuid4().hex[:16], "trace_flags": "03",
    }
    return record | fields


def app_line(moment: datetime, tracking_id: str | None, hostname: str | None = "web-1",
             **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {} if hostname is None else {"hostname": hostname}
    record |= {"@timestamp": moment.isoformat(timespec="milliseconds"), "level": "INFO", "logger": "acme.orders",
               "tracking_id": tracking_id, "message": "order created", "pid": 4242, "loc": "orders.py:7",
               "func": "create"}
    return record | fields


def write_lines(path: Path, records: Iterable[dict[str, Any] | bytes], mtime: float | None = None) -> int:
    """``records`` (a dict as a JSON line, bytes as they are) into ``path``, gzipped when it ends in ``.gz``;
    how many lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = b"".join((record if isinstance(record, bytes) else json.dumps(record).encode()) + b"\n"
                    for record in records)
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return data.count(b"\n") if path.suffix != ".gz" else gzip.decompress(data).count(b"\n")


def rotation(base: Path, seconds: int, gz: bool = True) -> Path:
    """``base``'s rotation as logrotate/trackline-central names it (``-%Y%m%d-%s``), ``seconds`` after EPOCH."""
    moment = EPOCH + seconds
    day = datetime.fromtimestamp(moment, UTC).strftime("%Y%m%d")
    return base.with_name(f"{base.name}-{day}-{moment}{'.gz' if gz else ''}")


def day_of_lines(start: datetime, count: int, host: str, prefix: str, step: timedelta = timedelta(seconds=7)
                 ) -> list[dict[str, Any]]:
    """``count`` access lines from ``start`` on, IDs ``PREFIX-N``."""
    return [access_line(start + number * step, f"{prefix}-{number}", host) for number in range(count)]


def trackline(*argv: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The installed ``trackline`` with ``argv``; its output as text."""
    return subprocess.run([str(TRACKLINE), *argv], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def sql_json(log_dir: Path, query: str, *argv: str) -> list[dict[str, Any]]:
    """``trackline sql QUERY --log-dir LOG_DIR --json``'s rows; fails on an error."""
    done = trackline("sql", query, "--log-dir", str(log_dir), "--json", *argv)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]
