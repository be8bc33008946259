"""``scripts/bench --trace``: ``trackline trace ID`` against ``grep -rF`` + ``zgrep -F`` (and ``rg -z``) on a
generated log tree.

The tree is a log host's: ``<host>/app.log``, ``access.log``, ``error.log`` with plain rotations (``.1``) and
gzipped ones (``-YYYYMMDD.gz``), contract-shaped JSON lines, nine tenths of the bytes on disk plain and one
tenth gzipped, as in issue 16's 1 GB measurement. One request's ID is in a dozen lines spread over the files.
Every tool runs once untimed (the tree is then in the page cache for all of them), then the tools run in turn,
round after round; the report gives the median wall time of each and the ratios.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
ID = "7acbe3dd-403e-4a2b-8174-db8d49bfd1c9"
HOSTS = ("web-a", "web-b")
#: (base file, share of the plain bytes)
FILES = (("access.log", 0.55), ("app.log", 0.35), ("error.log", 0.10))

APP = ('{{"@timestamp": "2026-01-{day}T{t}+08:00", "level": "INFO", "logger": "trackline.api", '
       '"tracking_id": "{id}", "message": "{message}", "pid": {pid}, "loc": "api/users.py:{n}", "func": "list_users", '
       '"trace_id": "{trace}", "span_id": "{span}", "hostname": "{host}"}}\n')
ACCESS = ('{{"@timestamp": "2026-01-{day}T{t}+08:00", "level": "INFO", "logger": "gunicorn.access", '
          '"tracking_id": "{id}", "message": "GET /api/names 200", "pid": {pid}, "remote_addr": "10.0.{n}.7", '
          '"protocol": "HTTP/1.1", "host": "api.example.com", "request_method": "GET", "request_path": "/api/names", '
          '"query_string": "page={n}", "status_code": 200, "response_length": 57, "referer": null, '
          '"user_agent": "python-requests/2.32.3", "request_time": 0.00{n}, "trace_id": "{trace}", '
          '"span_id": "{span}", "hostname": "{host}"}}\n')
ERROR = ('{{"@timestamp": "2026-01-{day}T{t}+08:00", "level": "ERROR", "logger": "gunicorn.error", '
         '"tracking_id": "{id}", "message": "{message}", "pid": {pid}, "loc": "glogging.py:{n}", "func": "error", '
         '"exc_info": "Traceback (most recent call last):\\n  File \\"app.py\\", line {n}, in view\\nValueError: '
         'boom", "hostname": "{host}"}}\n')
TEMPLATES = {"access.log": ACCESS, "app.log": APP, "error.log": ERROR}


def _lines(template: str, host: str, rng: random.Random, ids: list[str], count: int, day: int = 17) -> bytes:
    """``count`` lines of one file (one day of it), times increasing; each ID of the pool is a request of a few
    lines."""
    rows = []
    for number in range(count):
        ms = number * 37 % 86_400_000
        t = f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"
        tracking_id = ids[number // 3 % len(ids)]
        message = rng.choice(("Health check", "listed 3 users", "calling downstream"))
        rows.append(template.format(day=f"{day:02d}", t=t, id=tracking_id, message=message,
                                    pid=1000 + number % 7, n=number % 100, trace=tracking_id.replace("-", ""),
                                    span=tracking_id[:16].replace("-", "0"), host=host))
    return "".join(rows).encode()


def _with_id(data: bytes, rng: random.Random, times: int) -> tuple[bytes, int]:
    """``data`` with up to ``times`` lines of ``ID`` put in at line boundaries; how many were."""
    copied: set[bytes] = set()
    for _ in range(times):
        cut = data.find(b"\n", rng.randrange(len(data))) + 1
        line = data[data.rfind(b"\n", 0, cut - 1) + 1:cut]  # the line before, as the ID's: its own timestamp
        if ID.encode() in line or line in copied:
            continue  # the same line again would be a duplicate, which trace rightly prints once
        copied.add(line)
        data = data[:cut] + re.sub(rb'"tracking_id": "[^"]*"', f'"tracking_id": "{ID}"'.encode(), line) + data[cut:]
    return data, len(copied)


def generate(root: Path, size: int, seed: int = 16) -> dict[str, int]:
    """A tree of about ``size`` bytes on disk under ``root``; returns its plain, gzipped and line counts."""
    rng = random.Random(seed)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(20_000)]
    stats = {"plain": 0, "gzipped": 0, "lines": 0, "id_lines": 0}
    plain_budget, gzip_budget = size * 0.9, size * 0.1
    for host in HOSTS:
        for name, share in FILES:
            folder = root / host
            folder.mkdir(parents=True, exist_ok=True)
            template = TEMPLATES[name]
            line_size = len(_lines(template, host, rng, ids, 1))
            per_file = int(plain_budget * share / len(HOSTS) / 2 / line_size)
            for day, target in ((17, folder / name), (16, folder / f"{name}.1")):
                data, inserted = _with_id(_lines(template, host, rng, ids, per_file, day), rng, 2)
                target.write_bytes(data)
                stats["plain"] += len(data)
                stats["lines"] += per_file + inserted
                stats["id_lines"] += inserted
            # gzipped rotations: compressed size is what counts on disk
            written, day = 0, 15
            budget = gzip_budget * share / len(HOSTS)
            sample = len(gzip.compress(_lines(template, host, rng, ids, 20_000), compresslevel=6)) / 20_000
            while written < budget:
                count = max(1000, min(200_000, int((budget - written) / sample)))
                data, inserted = _with_id(_lines(template, host, rng, ids, count, day), rng, 1)
                packed = gzip.compress(data, compresslevel=6, mtime=0)
                (folder / f"{name}-202601{day:02d}.gz").write_bytes(packed)
                written += len(packed)
                stats["gzipped"] += len(packed)
                stats["lines"] += count + inserted
                stats["id_lines"] += inserted
                day = max(day - 1, 1)
    return stats


@dataclass
class Tool:
    """One way to find the ID's lines: one or more commands run one after the other."""

    label: str
    commands: list[list[str]]
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    max_rss_kib: int = 0
    found: int = 0

    def run(self) -> None:
        started, cpu, found = time.perf_counter(), 0.0, 0
        for argv in self.commands:
            process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            assert process.stdout is not None
            found += sum(1 for _ in process.stdout)
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            if process.returncode not in (0, 1):  # 1: grep found nothing in that part
                raise SystemExit(f"{' '.join(argv)} exited with {process.returncode}")
            cpu += usage.ru_utime + usage.ru_stime
            self.max_rss_kib = max(self.max_rss_kib, usage.ru_maxrss)
        self.seconds.append(time.perf_counter() - started)
        self.cpu.append(cpu)
        self.found = found


def tools(root: Path) -> list[Tool]:
    gzipped = sorted(str(path) for path in root.rglob("*.gz"))
    found = [
        Tool("trackline trace ID --log-dir TREE", [[str(BIN / "trackline"), "trace", ID, "--log-dir", str(root)]]),
        Tool("grep -rF ID TREE (plain) + zgrep -F ID *.gz",
             [["grep", "-rF", "--exclude=*.gz", ID, str(root)], ["zgrep", "-F", ID, *gzipped]]),
    ]
    if shutil.which("rg"):
        found.append(Tool("rg -z -F ID TREE", [["rg", "-z", "-F", ID, str(root)]]))
    return found


def report(args: argparse.Namespace, stats: dict[str, int], found: list[Tool], generated_s: float) -> str:
    trackline, grep = found[0], found[1]
    median = {tool.label: statistics.median(tool.seconds) for tool in found}
    lines = [
        f"## trace: {stats['plain'] / 1e6:.0f} MB plain + {stats['gzipped'] / 1e6:.0f} MB gzipped, "
        f"{stats['lines'] / 1e6:.2f} M lines, {stats['id_lines']} of them the ID's; {args.rounds} rounds, "
        f"page cache warm, {os.cpu_count()} CPUs (tree generated in {generated_s:.0f} s)",
        "",
        "| tool | median s | per round s | CPU s (median) | lines found | / grep + zgrep |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for tool in found:
        rounds = ", ".join(f"{s:.2f}" for s in tool.seconds)
        lines.append(f"| `{tool.label}` | {median[tool.label]:.2f} | {rounds} | {statistics.median(tool.cpu):.2f} | "
                     f"{tool.found} | {median[tool.label] / median[grep.label]:.2f} |")
    lines += ["", f"trackline / (grep + zgrep): **{median[trackline.label] / median[grep.label]:.2f}** (target <= 1.0)"]
    if len(found) > 2:
        lines[-1] += f"; trackline / rg -z: **{median[trackline.label] / median[found[2].label]:.2f}**"
    lines[-1] += f". trackline's max RSS: {trackline.max_rss_kib / 1024:.0f} MiB."
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    """Generate the tree under ``args.trace_dir`` (or a temporary directory), time the tools, print the table."""
    root = Path(args.trace_dir or os.environ.get("TMPDIR", "/tmp")) / f"trackline-trace-bench-{args.trace_mb}mb"
    started = time.perf_counter()
    marker = root / ".generated"
    if not marker.exists():  # a tree of that size from an earlier run is reused
        shutil.rmtree(root, ignore_errors=True)
        # in a child, so that the tools forked from this process do not start with its memory (max RSS)
        subprocess.run([sys.executable, __file__, str(root), str(args.trace_mb * 1_000_000)], check=True)
    stats = json.loads(marker.read_text())
    generated_s = time.perf_counter() - started
    found = tools(root)
    for tool in found:
        tool.run()  # untimed: fills the page cache; checks every tool finds the same lines
        tool.seconds.clear()
        tool.cpu.clear()
    if len({tool.found for tool in found}) != 1 or found[0].found != stats["id_lines"]:
        raise SystemExit(f"the tools disagree: {[(t.label, t.found) for t in found]}, expected {stats['id_lines']}")
    for number in range(1, args.rounds + 1):
        for tool in found:
            tool.run()
            print(f"==> round {number} {tool.label}: {tool.seconds[-1]:.2f} s", file=sys.stderr, flush=True)
    print(report(args, stats, found, generated_s))
    if not args.keep_tree:
        shutil.rmtree(root)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("trace mode")
    group.add_argument("--trace", action="store_true", help="time trackline trace against grep + zgrep (and rg -z)"
                       " on a generated log tree instead of loading the servers")
    group.add_argument("--trace-mb", type=int, default=200,
                       help="size of the tree on disk in MB (default 200, about a minute in all; 1000 for the"
                            " issue's 1 GB)")
    group.add_argument("--trace-dir", help="where to put the tree (default $TMPDIR or /tmp)")
    group.add_argument("--keep-tree", action="store_true", help="keep the tree for the next run (it is reused)")
    group.add_argument("--rounds", type=int, default=3, help="timed rounds of every tool (default 3)")



if __name__ == "__main__":  # python trace_bench.py ROOT BYTES: generate the tree
    tree = Path(sys.argv[1])
    (tree / ".generated").write_text(json.dumps(generate(tree, int(sys.argv[2]))))
