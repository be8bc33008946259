"""``scripts/bench --quick`` runs end to end: seven real gunicorn servers under wrk, and prints its tables;
``scripts/bench --trace`` generates a small log tree and times trace against grep + zgrep on it;
``scripts/bench --memory`` reads each worker's RSS at each checkpoint of five servers;
``scripts/bench --layers`` serves trackline whole and without each piece it names.

Slow (about 30 s of load, and a minute for --memory). No timed assertions: the numbers are reported, never judged here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from support.paths import REPO
from support.requirements import unavailable

pytestmark = pytest.mark.slow


def _wrk_available() -> bool:
    """wrk is installed, or scripts/bench can install it (root with dpkg and apt-get)."""
    if shutil.which("wrk"):
        return True
    return os.geteuid() == 0 and bool(shutil.which("apt-get")) and bool(shutil.which("dpkg-query"))


def test_quick_bench_prints_seven_servers_and_the_ratios():
    if not _wrk_available():
        unavailable("wrk is missing and cannot be installed here (needs root, dpkg and apt-get)")
    result = subprocess.run([str(REPO / "scripts" / "bench"), "--quick"], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for label in ("(a) raw WSGI", "(b) bare Flask", "(c) trackline", "(d) stock: bare Flask + --access-logfile",
                  "(e) OTel: bare Flask + OTel + --access-logfile", "(f) trackline + OTel",
                  "(g) trackline serving (b)'s app"):
        row = re.search(rf"^\| {re.escape(label)} \| (\d+) \|", out, re.M)
        assert row and int(row.group(1)) > 0, f"no {label} row with requests/s in:\n{out}"
    cycles = re.findall(r"^\| \d \|(?: \d+ \|){7}(?: (\d+\.\d\d) \|){5}$", out, re.M)
    assert len(cycles) == 3, f"expected 3 interleaved cycles with the five ratios:\n{out}"
    for ratio, target in (("c/b", "0.85"), ("c/d", "1.05"), ("g/b", "0.85"), ("g/d", "1.05"), ("f/e", "0.90")):
        verdict = rf"^\| {ratio} \| [^|]+ \| \*\*\d+\.\d\d\*\* \| >= {target} \((met|not met)\) \| \d+\.\d\d \|$"
        assert re.search(verdict, out, re.M), f"no {ratio} verdict in:\n{out}"
    # trackline really logged: one access line and one app line per request it answered.
    logged = re.search(r"wrote (\d+) access lines and (\d+) app lines for (\d+) requests", out)
    assert logged, out
    access, app, requests = map(int, logged.groups())
    assert access == app >= requests > 0
    stock = re.search(r"stock gunicorn wrote (\d+) text access lines", out)
    assert stock and int(stock.group(1)) > 0, out
    for formatter in ("python-json-logger JsonFormatter", "trackline JsonFormatter"):
        assert re.search(rf"^\| {formatter} \| \d+ \| [\d.]+ \| \d+ \| [\d.]+ \|$", out, re.M), out


def test_trace_bench_finds_the_same_lines_as_grep_and_prints_the_ratio(tmp_path):
    result = subprocess.run([str(REPO / "scripts" / "bench"), "--trace", "--trace-mb", "5", "--rounds", "1",
                             "--trace-dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    row = re.compile(r"^\| ([^|]+?) \| `([^`]+)` \| [\d.]+ \| [\d., ]+ \| [\d.]+ \| \d+ \| (\d+) \| [\d.]+ \|$", re.M)
    trees: dict[str, list[tuple[str, int]]] = {}
    name = ""
    for tree, tool, found in row.findall(out):
        name = name if tree == "〃" else tree.split(":")[0]  # 〃: the tree of the row above
        trees.setdefault(name, []).append((tool, int(found)))
    assert set(trees) == {"mostly plain", "gz-heavy"}, out
    for tools in trees.values():
        assert [tool for tool, _ in tools[:2]] == ["trackline trace ID --log-dir TREE",
                                                   "grep -rF ID TREE (plain) + zgrep -F ID *.gz"], out
        assert len({found for _, found in tools}) == 1 and tools[0][1] > 0, out  # every tool found the same lines
    for shape in ("mostly plain", "gz-heavy"):
        assert re.search(rf"^- {shape}: trackline / \(grep \+ zgrep\) \*\*\d+\.\d\d\*\*", out, re.M), out
    assert re.search(r"^\| `trackline --version` \| [\d.]+ \|", out, re.M), out
    assert list(tmp_path.iterdir()) == []  # the tree is removed


def test_layers_bench_serves_trackline_without_each_piece_it_names():
    if not _wrk_available():
        unavailable("wrk is missing and cannot be installed here (needs root, dpkg and apt-get)")
    result = subprocess.run([str(REPO / "scripts" / "bench"), "--layers", "access", "headers", "--quick"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    access_lines = {}
    for label in ("(b) bare Flask", "(d) stock: bare Flask + --access-logfile", "(g) trackline serving (b)'s app",
                  "(g) less the access line", "(g) less X-Tracking-ID and X-DateTime on the response"):
        row = re.search(rf"^\| {re.escape(label)} \| \d+\.\d \| (\d+) \| (\d+) \|[^|]*\|$", out, re.M)
        assert row and int(row.group(1)) > 0, f"no {label} row with requests/s in:\n{out}"
        access_lines[label] = int(row.group(2))
    # the piece is really out: the server without the access line wrote none, the others one per request
    assert access_lines["(g) less the access line"] == 0, out
    assert access_lines["(g) trackline serving (b)'s app"] > 0, out
    assert access_lines["(g) less X-Tracking-ID and X-DateTime on the response"] > 0, out
    assert re.search(r"^\(g\)/\(b\) req/s, median of cycles: \d+\.\d\d$", out, re.M), out


def test_layers_bench_names_its_pieces_when_asked_for_one_it_lacks():
    result = subprocess.run([str(REPO / "scripts" / "bench"), "--layers", "access", "gc", "--quick"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no piece named gc (pieces: access, access-filter, access-write, headers, trace, inflight, all)" in \
        result.stderr, result.stderr


def test_memory_bench_reads_each_worker_of_each_server_at_each_checkpoint():
    if not _wrk_available():
        unavailable("wrk is missing and cannot be installed here (needs root, dpkg and apt-get)")
    result = subprocess.run([str(REPO / "scripts" / "bench"), "--memory", "--memory-requests", "12000"], cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    header = r"^\| server \| after 10,000 \| after 12,000 \| growth 10,000 -> 12,000 \(max\) \|"
    assert re.search(header, out, re.M), out
    for label in ("(c) trackline", "(f) trackline + OTel", "(e) OTel + --access-logfile",
                  "(f) trackline + OTel, OTel's span queue full at once",
                  "(e) OTel + --access-logfile, OTel's span queue full at once"):
        # two workers per reading, both readings, then the growth (bold) and the growth over the second half
        row = rf"^\| {re.escape(label)} \|(?: \d+\.\d, \d+\.\d \|){{2}} \*\*-?\d+\.\d\d\*\* \| -?\d+\.\d\d \|$"
        assert re.search(row, out, re.M), f"no {label} row in:\n{out}"


def test_memory_bench_refuses_a_run_shorter_than_its_baseline():
    result = subprocess.run([str(REPO / "scripts" / "bench"), "--memory", "--memory-requests", "5000"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--memory-requests must be more than the baseline's 10000" in result.stderr
    assert "Traceback" not in result.stderr
