"""``scripts/bench --trace``: ``trackline trace ID`` against ``grep -rF`` + ``zgrep -F`` (and ``rg -z``) on
generated log trees, and ``trackline``'s start-up against ``python -c pass``.

A tree is a log host's: ``<host>/app.log``, ``access.log``, ``error.log`` with plain rotations (``.1``) and
gzipped ones (``-YYYYMMDD.gz``), contract-shaped JSON lines. Two shapes (``--trace-shape``, both by default):
**gz-heavy**, a tenth of the bytes on disk gzipped as in issue 16's 1 GB measurement (the text inside the
``.gz`` files is then about twice the plain text), and **mostly plain**, a hundredth gzipped (issue 23's
300 MB tree: the plain files are most of the work). One request's ID is in a few dozen lines spread over the
files. Every tool runs once untimed (the trees are then in the page cache for all of them), then the tools run
in turn, round after round, both trees in each round; the report gives the median wall time of each, the
ratios of the medians and of each round, CPU time and max RSS. Then each start-up command runs in turn
(``--startup-runs`` times) and the medians are compared.
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
#: GNU time, to read each tool's max RSS; and where it writes it.
TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
RSS_FILE = Path(os.environ.get("TMPDIR", "/tmp")) / f"trackline-trace-bench-rss-{os.getpid()}"
#: Tree shapes: the share of the bytes on disk that is gzipped, the name in the report, the issue's target for
#: trace / (grep + zgrep).
SHAPES = {"plain": (0.01, "mostly plain", 0.8), "gz": (0.1, "gz-heavy", 0.5)}
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


def generate(root: Path, size: int, gz_share: float = 0.1, seed: int = 16) -> dict[str, int]:
    """A tree of about ``size`` bytes on disk under ``root``, ``gz_share`` of them gzipped; returns its plain,
    gzipped and line counts."""
    rng = random.Random(seed)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(20_000)]
    stats = {"plain": 0, "gzipped": 0, "lines": 0, "id_lines": 0}
    plain_budget, gzip_budget = size * (1 - gz_share), size * gz_share
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
        for command in self.commands:
            # GNU time starts the tool from its own small process: the max RSS it reports is the tool's own
            argv = [TIME, "-f", "%M", "-o", str(RSS_FILE), *command] if TIME else command
            process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            assert process.stdout is not None
            found += sum(1 for _ in process.stdout)
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            if process.returncode not in (0, 1):  # 1: grep found nothing in that part
                raise SystemExit(f"{' '.join(command)} exited with {process.returncode}")
            cpu += usage.ru_utime + usage.ru_stime  # the tool's and its children's (zgrep's gzip and grep)
            # without GNU time: wait4's, which is at least this process's RSS (the child starts as its copy)
            rss = int(RSS_FILE.read_text().split()[-1]) if TIME else usage.ru_maxrss
            self.max_rss_kib = max(self.max_rss_kib, rss)
        self.seconds.append(time.perf_counter() - started)
        self.cpu.append(cpu)
        self.found = found


def tools(root: Path, baseline: str | None = None) -> list[Tool]:
    """trackline trace, grep + zgrep, rg -z where it is installed, and ``baseline`` (another trackline command)."""
    gzipped = sorted(str(path) for path in root.rglob("*.gz"))
    found = [
        Tool("trackline trace ID --log-dir TREE", [[str(BIN / "trackline"), "trace", ID, "--log-dir", str(root)]]),
        Tool("grep -rF ID TREE (plain) + zgrep -F ID *.gz",
             [["grep", "-rF", "--exclude=*.gz", ID, str(root)], ["zgrep", "-F", ID, *gzipped]]),
    ]
    if shutil.which("rg"):
        found.append(Tool("rg -z -F ID TREE", [["rg", "-z", "-F", ID, str(root)]]))
    if baseline:
        found.append(Tool(f"{baseline} trace ID --log-dir TREE", [[baseline, "trace", ID, "--log-dir", str(root)]]))
    return found


def _median(values: list[float]) -> float:
    return statistics.median(values)


@dataclass
class Tree:
    """One generated tree and the tools timed on it."""

    shape: str
    root: Path
    stats: dict[str, int]
    tools: list[Tool] = field(default_factory=list)

    @property
    def label(self) -> str:
        return SHAPES[self.shape][1]

    def ratios(self, other: int) -> list[float]:
        """trackline / tool ``other`` in each round (the two ran within seconds of each other)."""
        return [mine / theirs for mine, theirs in zip(self.tools[0].seconds, self.tools[other].seconds, strict=True)]


def prepare(args: argparse.Namespace, shape: str) -> Tree:
    """The tree of ``shape`` under ``--trace-dir`` (or $TMPDIR), generated in a child unless an earlier run kept it."""
    base = Path(args.trace_dir or os.environ.get("TMPDIR", "/tmp"))
    root = base / f"trackline-trace-bench-{args.trace_mb}mb-{shape}"
    marker = root / ".generated"
    if not marker.exists():  # a tree of that size and shape from an earlier run is reused
        shutil.rmtree(root, ignore_errors=True)
        started = time.perf_counter()
        # in a child, so that the tools forked from this process do not start with its memory (max RSS)
        subprocess.run([sys.executable, __file__, str(root), str(args.trace_mb * 1_000_000), str(SHAPES[shape][0])],
                       check=True)
        print(f"==> generated the {SHAPES[shape][1]} tree in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return Tree(shape, root, json.loads(marker.read_text()), tools(root, args.trace_baseline))


def compile_trackline() -> None:
    """Write trackline's bytecode, as an install does: with PYTHONDONTWRITEBYTECODE set (or an editable install
    never imported before) every start would otherwise compile the modules again."""
    where = "import os, trackline; print(os.path.dirname(trackline.__file__))"
    package = subprocess.run([str(BIN / "python"), "-c", where], capture_output=True, text=True,
                             check=True).stdout.strip()
    subprocess.run([str(BIN / "python"), "-m", "compileall", "-q", package], check=True)


def startup(runs: int, scratch: Path, baseline: str | None = None) -> dict[str, list[float]]:
    """Wall seconds of each start-up command, ``runs`` times each, in turn (``trace`` on a log dir of one small
    file made in ``scratch``)."""
    log_dir = scratch / "trackline-trace-bench-startup"
    log_dir.mkdir(exist_ok=True)
    (log_dir / "app.log").write_text(APP.format(day=17, t="16:44:37.123", id=ID, message="Health check", pid=7, n=1,
                                                trace=ID.replace("-", ""), span=ID[:16], host="web-a"))
    commands = {
        "python -c pass": [str(BIN / "python"), "-c", "pass"],
        "trackline --version": [str(BIN / "trackline"), "--version"],
        "trackline trace --help": [str(BIN / "trackline"), "trace", "--help"],
        "trackline trace ID --log-dir DIR (one small file)": [str(BIN / "trackline"), "trace", ID, "--log-dir",
                                                             str(log_dir)],
    }
    if baseline:
        commands[f"{baseline} --version"] = [baseline, "--version"]
        commands[f"{baseline} trace ID --log-dir DIR"] = [baseline, "trace", ID, "--log-dir", str(log_dir)]
    seconds: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(runs):
        for label, argv in commands.items():
            started = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            seconds[label].append(time.perf_counter() - started)
    shutil.rmtree(log_dir)
    return seconds


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def report(args: argparse.Namespace, trees: list[Tree], loads: tuple[str, str], started: dict[str, list[float]]) -> str:
    lines = [
        f"## trace: {args.trace_mb} MB trees, {args.rounds} rounds, page cache warm, {os.cpu_count()} CPUs; "
        f"load average {loads[0]} before, {loads[1]} after",
        "",
        "| tree | tool | median s | per round s | CPU s (median) | max RSS MiB | lines found | / grep + zgrep |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for tree in trees:
        stats = tree.stats
        where = (f"{tree.label}: {stats['plain'] / 1e6:.0f} MB plain + {stats['gzipped'] / 1e6:.1f} MB gzipped, "
                 f"{stats['lines'] / 1e6:.2f} M lines")
        grep = _median(tree.tools[1].seconds)
        for tool in tree.tools:
            rounds = ", ".join(f"{s:.2f}" for s in tool.seconds)
            lines.append(f"| {where} | `{tool.label}` | {_median(tool.seconds):.2f} | {rounds} | "
                         f"{_median(tool.cpu):.2f} | {tool.max_rss_kib / 1024:.0f} | {tool.found} | "
                         f"{_median(tool.seconds) / grep:.2f} |")
            where = "〃"
    lines.append("")
    for tree in trees:
        trackline, grep = _median(tree.tools[0].seconds), _median(tree.tools[1].seconds)
        per_round = ", ".join(f"{ratio:.2f}" for ratio in tree.ratios(1))
        cpu = _median(tree.tools[0].cpu) / _median(tree.tools[1].cpu)
        text = (f"{tree.label}: trackline / (grep + zgrep) **{trackline / grep:.2f}** (target <= "
                f"{SHAPES[tree.shape][2]}; per round {per_round}: median {_median(tree.ratios(1)):.2f}; in CPU time"
                f" {cpu:.2f})")
        if shutil.which("rg"):
            text += f", trackline / rg -z **{trackline / _median(tree.tools[2].seconds):.2f}**"
        if args.trace_baseline:
            text += f", trackline / {args.trace_baseline} **{trackline / _median(tree.tools[-1].seconds):.2f}**"
        lines.append(f"- {text}; trackline's max RSS {tree.tools[0].max_rss_kib / 1024:.0f} MiB.")
    if started:
        base = _median(started["python -c pass"])
        lines += ["", f"Start-up, median of {len(started['python -c pass'])} runs of each, in turn "
                      "(bytecode compiled, files in the page cache):", "",
                  "| command | median ms | min ms | - python -c pass, ms |", "|---|---:|---:|---:|"]
        for label, seconds in started.items():
            lines.append(f"| `{label}` | {_median(seconds) * 1e3:.1f} | {min(seconds) * 1e3:.1f} | "
                         f"{(_median(seconds) - base) * 1e3:+.1f} |")
        version = _median(started["trackline --version"]) - base
        lines += ["", f"`trackline --version` - `python -c pass`: **{version * 1e3:.1f} ms** (target <= 30 ms)."]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    """Generate (or reuse) the trees, time the tools round after round, then the start-up; print the tables."""
    shapes = list(SHAPES) if args.trace_shape == "both" else [args.trace_shape]
    trees = [prepare(args, shape) for shape in shapes]
    compile_trackline()
    for tree in trees:
        for tool in tree.tools:
            tool.run()  # untimed: fills the page cache; checks every tool finds the same lines
            tool.seconds.clear()
            tool.cpu.clear()
        found = [(tool.label, tool.found) for tool in tree.tools]
        if len({count for _, count in found}) != 1 or found[0][1] != tree.stats["id_lines"]:
            raise SystemExit(f"the tools disagree on the {tree.label} tree: {found}, expected {tree.stats['id_lines']}")
    before = _load()
    for number in range(1, args.rounds + 1):
        for tree in trees:
            turn = tree.tools[number % len(tree.tools):] + tree.tools[:number % len(tree.tools)]  # each goes first
            for tool in turn:
                tool.run()
                print(f"==> round {number} {tree.label} {tool.label}: {tool.seconds[-1]:.2f} s", file=sys.stderr,
                      flush=True)
    after = _load()
    started = startup(args.startup_runs, trees[0].root.parent, args.trace_baseline) if args.startup_runs else {}
    print(report(args, trees, (before, after), started))
    RSS_FILE.unlink(missing_ok=True)
    if not args.keep_tree:
        for tree in trees:
            shutil.rmtree(tree.root)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("trace mode")
    group.add_argument("--trace", action="store_true", help="time trackline trace against grep + zgrep (and rg -z)"
                       " on generated log trees, and trackline's start-up, instead of loading the servers")
    group.add_argument("--trace-mb", type=int,
                       help="size of each tree on disk in MB (default 200, with --all 300: issue 23's; 1000 is the"
                            " 1 GB of issues 16 and 23)")
    group.add_argument("--trace-shape", choices=("both", *SHAPES), default="both",
                       help="which trees: mostly plain (a hundredth of the bytes gzipped), gz-heavy (a tenth), or"
                            " both side by side (default)")
    group.add_argument("--trace-dir", help="where to put the trees (default $TMPDIR or /tmp)")
    group.add_argument("--keep-tree", action="store_true", help="keep the trees for the next run (they are reused)")
    group.add_argument("--rounds", type=int, default=3, help="timed rounds of every tool (default 3)")
    group.add_argument("--trace-baseline", metavar="COMMAND",
                       help="also time this trackline command beside the venv's, in the same rounds (e.g. a script"
                            " running an older checkout's trackline.cli)")
    group.add_argument("--startup-runs", type=int, default=20,
                       help="runs of each start-up command (default 20; 0 leaves the start-up out)")


if __name__ == "__main__":  # python trace_bench.py ROOT BYTES GZ_SHARE: generate a tree
    tree = Path(sys.argv[1])
    (tree / ".generated").write_text(json.dumps(generate(tree, int(sys.argv[2]), float(sys.argv[3]))))
