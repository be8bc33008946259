"""``scripts/bench --sql``: a log host's month as logrotate keeps it (gzipped JSON) against the same month as
``trackline compact`` keeps it (zstd Parquet): size on disk, ``trackline trace ID`` and a p99-per-route query.

The generated tree is a log host's: ``<host>/access.log``, ``app.log``, ``error.log`` rotated daily
(``-YYYYMMDD-<epoch>.gz``, gzip -6 as logrotate's ``compress``), contract-shaped lines with the ``hostname`` the
log host splices in, local time +08:00 (so each day's file spans two UTC dates), random IDs. One request's ID
is put into a dozen lines spread over the month. A hard-linked copy of the tree is compacted with
``--keep-json-days 0``, so the two trees hold the same lines, one as JSON and one as Parquet. Each command runs
once untimed (page cache warm for both), then the commands run in turn, round after round, side by side; the
report gives medians, their ratios, and the load average before and after.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

BIN = Path(sys.executable).parent
ID = "5d0c1f4e-9a7b-4c3d-8e2f-0a1b2c3d4e5f"
ZONE = timezone(timedelta(hours=8))
ROUTES = ("/api/orders", "/api/orders/{n}", "/api/users", "/api/names", "/api/health", "/api/jobs")
#: per request: one access line, and an app line for this share of requests (an error line for 1 in 50)
APP_SHARE = 0.8
P99_QUERY = ("SELECT regexp_replace(request_path, '/[0-9]+$', '/{id}') AS route, count(*) AS requests, "
             "round(quantile_cont(request_time, 0.99), 4) AS p99 FROM access GROUP BY 1 ORDER BY 1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("--sql (benchmarks/sql_bench.py)")
    group.add_argument("--sql", action="store_true",
                       help="instead: a month of a log host's JSON (gz) against its Parquet history: size, trace ID,"
                            " p99 per route")
    group.add_argument("--sql-mb", type=int, default=2200, metavar="MB",
                       help="uncompressed JSON to generate (default 2200: at least 2 GB)")
    group.add_argument("--sql-hosts", type=int, default=4, metavar="N", help="hosts (default 4)")
    group.add_argument("--sql-days", type=int, default=30, metavar="N", help="days (default 30)")
    group.add_argument("--sql-rounds", type=int, default=3, metavar="N", help="timed rounds (default 3)")
    group.add_argument("--sql-dir", metavar="DIR", help="where to generate (default: $TMPDIR or /tmp)")
    group.add_argument("--keep-sql-tree", action="store_true", help="keep the generated trees")


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(digits * 4):0{digits}x}"


def _day(host: str, day: datetime, requests: int, rng: random.Random) -> dict[str, bytes]:
    """One host's day: the three files' lines."""
    access, app, error = [], [], []
    step = 86_400_000 / requests
    for number in range(requests):
        moment = day + timedelta(milliseconds=number * step + rng.random() * step)
        stamp = moment.isoformat(timespec="milliseconds")
        tracking_id = f"{_hex(rng, 8)}-{_hex(rng, 4)}-4{_hex(rng, 3)}-{_hex(rng, 4)}-{_hex(rng, 12)}"
        trace, span = tracking_id.replace("-", ""), _hex(rng, 16)
        route = rng.choice(ROUTES).replace("{n}", str(rng.randrange(1, 5000)))
        status = 500 if rng.random() < 0.005 else 404 if rng.random() < 0.03 else 200
        seconds = round(rng.lognormvariate(-4.5, 0.8) * (3 if route.startswith("/api/orders") else 1), 6)
        pid = 2000 + rng.randrange(4)
        head = (f'{{"hostname":"{host}","@timestamp": "{stamp}", "level": "INFO", "logger": "gunicorn.access", '
                f'"tracking_id": "{tracking_id}", ')
        access.append(
            f'{head}"message": "GET {route} {status}", "pid": {pid}, "remote_addr": "10.0.{rng.randrange(256)}.'
            f'{rng.randrange(256)}", "protocol": "HTTP/1.1", "host": "api.example.com", "request_method": "GET", '
            f'"request_path": "{route}", "query_string": "", "status_code": {status}, "response_length": '
            f'{rng.randrange(40, 4000)}, "referer": null, "user_agent": "python-requests/2.32.3", "request_time": '
            f'{seconds}, "trace_id": "{trace}", "span_id": "{span}", "trace_flags": "03"}}\n')
        if rng.random() < APP_SHARE:
            app.append(f'{{"hostname":"{host}","@timestamp": "{stamp}", "level": "INFO", "logger": "acme.orders", '
                       f'"tracking_id": "{tracking_id}", "message": "listed {rng.randrange(50)} orders", "pid": {pid}, '
                       f'"loc": "orders.py:{rng.randrange(10, 300)}", "func": "list_orders", "trace_id": "{trace}", '
                       f'"span_id": "{span}", "trace_flags": "03", "order_count": {rng.randrange(50)}}}\n')
        if status == 500:
            error.append(f'{{"hostname":"{host}","@timestamp": "{stamp}", "level": "ERROR", "logger": '
                         f'"gunicorn.error", "tracking_id": "{tracking_id}", "message": "Error handling request '
                         f'{route}", "pid": {pid}, "loc": "glogging.py:272", "func": "exception", "exc_info": '
                         f'"Traceback (most recent call last):\\n  File \\"orders.py\\", line 7, in view\\n'
                         f'ValueError: boom", "trace_id": "{trace}", "span_id": "{span}", "trace_flags": "03"}}\n')
    return {name: "".join(lines).encode() for name, lines in
            (("access.log", access), ("app.log", app), ("error.log", error))}


def _with_id(data: bytes, rng: random.Random) -> tuple[bytes, int]:
    """``data`` with one line's tracking ID replaced by ``ID``; 1, or 0 when it has no line."""
    if not data:
        return data, 0
    cut = data.rfind(b"\n", 0, rng.randrange(len(data))) + 1
    end = data.index(b"\n", cut) + 1
    line = json.loads(data[cut:end])
    old = line["tracking_id"].encode()
    return data[:cut] + data[cut:end].replace(old, ID.encode()) + data[end:], 1


def generate(root: Path, megabytes: int, hosts: int, days: int, seed: int = 26) -> dict[str, int]:
    """The gz tree under ``root``; its byte and line counts."""
    rng = random.Random(seed)
    first = datetime(2026, 11, 1, tzinfo=ZONE)
    per_request = 640 + 380 * APP_SHARE  # bytes of JSON per request, about
    requests = int(megabytes * 1e6 / per_request / hosts / days)
    stats = {"json": 0, "gz": 0, "lines": 0, "id_lines": 0, "files": 0}
    id_days = set(rng.sample(range(days), min(days, 6)))
    for host_number in range(hosts):
        host = f"web-{host_number + 1}"
        (root / host).mkdir(parents=True, exist_ok=True)
        for number in range(days):
            day = first + timedelta(days=number)
            rotated = int((day + timedelta(days=1)).timestamp())  # logrotate at the next midnight
            for name, lines in _day(host, day, requests, rng).items():
                data, inserted = lines, 0
                if number in id_days and host_number < 2 and name != "error.log":
                    data, inserted = _with_id(lines, rng)
                stats["id_lines"] += inserted
                stem = f"{name}-{(day + timedelta(days=1)).strftime('%Y%m%d')}-{rotated}"
                packed = gzip.compress(data, compresslevel=6, mtime=0)
                path = root / host / f"{stem}.gz"
                path.write_bytes(packed)
                os.utime(path, (rotated, rotated))
                stats["json"] += len(data)
                stats["gz"] += len(packed)
                stats["lines"] += data.count(b"\n")
                stats["files"] += 1
        print(f"==> generated {host}: {stats['json'] / 1e6:.0f} MB of JSON so far", file=sys.stderr, flush=True)
    return stats


def _size(root: Path, suffix: str) -> int:
    return sum(path.stat().st_size for path in root.rglob(f"*{suffix}") if path.is_file())


@dataclass
class Command:
    label: str
    argv: list[str]
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    output: str = ""

    def run(self) -> None:
        started = time.perf_counter()
        done = subprocess.run(self.argv, capture_output=True)
        self.seconds.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(self.argv)} exited with {done.returncode}: {done.stderr.decode()[-2000:]}")
        self.output = done.stdout.decode()


def _children_cpu() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


def _timed(command: Command) -> None:
    before = _children_cpu()
    command.run()
    command.cpu.append(_children_cpu() - before)


def main(args: argparse.Namespace) -> int:
    base = Path(args.sql_dir or os.environ.get("TMPDIR", "/tmp")) / "trackline-sql-bench"
    gz_tree, parquet_tree = base / "gz", base / "parquet-only"
    shutil.rmtree(base, ignore_errors=True)
    load_before = os.getloadavg()
    started = time.perf_counter()
    stats = generate(gz_tree, args.sql_mb, args.sql_hosts, args.sql_days)
    generated_s = time.perf_counter() - started
    shutil.copytree(gz_tree, parquet_tree, copy_function=os.link)  # hard links: compact unlinks, never writes
    compact = Command("trackline compact --keep-json-days 0",
                      [str(BIN / "trackline"), "compact", "--log-dir", str(parquet_tree), "--keep-json-days", "0"])
    _timed(compact)
    leftover = list(parquet_tree.rglob("*.gz"))
    if leftover:
        raise SystemExit(f"compact left {len(leftover)} rotation(s): {compact.output}")
    parquet_bytes = _size(parquet_tree / "parquet", ".parquet")
    trackline = str(BIN / "trackline")
    commands = [
        Command("trace ID, gz JSON", [trackline, "trace", ID, "--log-dir", str(gz_tree)]),
        Command("trace ID, Parquet", [trackline, "trace", ID, "--log-dir", str(parquet_tree)]),
        Command("p99 per route, gz JSON", [trackline, "sql", P99_QUERY, "--log-dir", str(gz_tree), "--csv"]),
        Command("p99 per route, Parquet", [trackline, "sql", P99_QUERY, "--log-dir", str(parquet_tree), "--csv"]),
    ]
    for command in commands:
        _timed(command)  # untimed: page cache warm for both trees, and the answers compared
        command.seconds.clear()
        command.cpu.clear()
    found = [len(command.output.splitlines()) for command in commands[:2]]
    if found != [stats["id_lines"]] * 2:
        raise SystemExit(f"trace found {found} lines, expected {stats['id_lines']} in each tree")
    if commands[2].output != commands[3].output:
        raise SystemExit(f"the p99 queries disagree:\n{commands[2].output}\n{commands[3].output}")
    for number in range(1, args.sql_rounds + 1):
        for command in commands:
            _timed(command)
            print(f"==> round {number} {command.label}: {command.seconds[-1]:.2f} s", file=sys.stderr, flush=True)
    load_after = os.getloadavg()
    print(report(args, stats, parquet_bytes, compact, commands, generated_s, load_before, load_after))
    if not args.keep_sql_tree:
        shutil.rmtree(base)
    return 0


def report(args: argparse.Namespace, stats: dict[str, int], parquet_bytes: int, compact: Command,
           commands: list[Command], generated_s: float, load_before: tuple[float, float, float],
           load_after: tuple[float, float, float]) -> str:
    median = [statistics.median(command.seconds) for command in commands]
    lines = [
        f"## SQL and Parquet history: {args.sql_hosts} hosts x {args.sql_days} days, {stats['files']} daily "
        f"rotations, {stats['lines'] / 1e6:.2f} M lines, {stats['json'] / 1e9:.2f} GB of JSON "
        f"(generated in {generated_s:.0f} s); {os.cpu_count()} CPUs; load average "
        f"{' '.join(f'{v:.2f}' for v in load_before)} before, {' '.join(f'{v:.2f}' for v in load_after)} after",
        "",
        "| on disk | bytes | / JSON | / gz |",
        "|---|---:|---:|---:|",
        f"| JSON, uncompressed | {stats['json']:,} | 1.00 | {stats['json'] / stats['gz']:.2f} |",
        f"| JSON, gzip -6 (logrotate) | {stats['gz']:,} | {stats['gz'] / stats['json']:.3f} | 1.00 |",
        f"| Parquet, zstd ({compact.label}) | {parquet_bytes:,} | {parquet_bytes / stats['json']:.3f} | "
        f"{parquet_bytes / stats['gz']:.2f} |",
        "",
        f"`trackline compact` took {compact.seconds[0]:.0f} s ({compact.cpu[0]:.0f} s CPU): "
        f"{stats['json'] / 1e6 / compact.seconds[0]:.0f} MB of JSON/s.",
        "",
        "| command | median s | per round s | CPU s (median) | Parquet / gz |",
        "|---|---:|---:|---:|---:|",
    ]
    for number, command in enumerate(commands):
        rounds = ", ".join(f"{s:.2f}" for s in command.seconds)
        ratio = f"{median[number] / median[number - 1]:.3f}" if number % 2 else ""
        lines.append(f"| `{command.label}` | {median[number]:.2f} | {rounds} | "
                     f"{statistics.median(command.cpu):.2f} | {ratio} |")
    lines += ["", f"trace found {stats['id_lines']} lines in each tree; the p99 answers are identical:", "",
              "```", commands[3].output.rstrip(), "```"]
    return "\n".join(lines)


if __name__ == "__main__":  # `python benchmarks/sql_bench.py DIR MB`: only generate a tree, to look at it
    print(json.dumps(generate(Path(sys.argv[1]), int(sys.argv[2]), 4, 30)))
