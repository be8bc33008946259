"""What trackline's tracking and JSON logging cost: (a) raw WSGI, (b) bare Flask, (c) trackline, and (d) what
most users run instead, bare Flask with gunicorn's stock text access log, side by side; and beside
OpenTelemetry: (e) the bare Flask app instrumented with OTel (SDK, batched, Flask and logging instrumentation)
with the stock access log, (f) the same OTel-instrumented app served by trackline.

All six run under gunicorn with the same settings (gunicorn_conf.SHARED) on 127.0.0.1; wrk loads them in
interleaved cycles a, b, c, d, e, f, a, ... with the same client settings. Prints markdown tables:
requests/s, p50/p99 latency, the c/b, c/d and f/e ratios per cycle and their medians, worker CPU per request,
RSS per worker, and the JSON formatters' lines/s. ``--memory`` loads trackline with and without OTel (and OTel
with its span queue full at once) for 200,000 requests and reads each worker's RSS after 10,000 and every
50,000. ``--trace`` times ``trackline trace`` instead (trace_bench.py); ``--sql`` a month of gz JSON against its
Parquet history (sql_bench.py).
Run it through ``scripts/bench``, which installs wrk and the venv first.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import sql_bench
import trace_bench
from gunicorn_conf import SHARED
from trackline import context
from trackline.logs import JsonFormatter, TrackingIdFilter

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Load:
    """One wrk run against one server."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_us: float = 0.0  # worker CPU time per request


@dataclass
class Server:
    """One gunicorn master (our child) serving one of the apps, with its files under ``root``."""

    label: str
    root: Path
    argv: list[str]
    env: dict[str, str]
    port: int
    process: subprocess.Popen[bytes] | None = None
    loads: list[Load] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    warmup_requests: int = 0

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "server.out", "wb") as out:
            self.process = subprocess.Popen(self.argv, env={**os.environ, **self.env}, cwd=self.root,
                                            stdout=out, stderr=subprocess.STDOUT)

    def wait_ready(self, url_path: str, timeout: float = 60.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.label} exited with {self.process.returncode}: see {self.root}/server.out\n"
                                 + (self.root / "server.out").read_text(errors="replace")[-2000:])
            try:
                with urllib.request.urlopen(self.url(url_path), timeout=5) as response:
                    if response.status == 200 and len(self.worker_pids()) == SHARED["workers"]:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"{self.label} did not answer {url_path} within {timeout:.0f}s")

    def url(self, url_path: str) -> str:
        return f"http://127.0.0.1:{self.port}{url_path}"

    def worker_pids(self) -> list[int]:
        """The master's children (gunicorn's workers), from /proc."""
        assert self.process is not None
        return [pid for pid, (ppid, _) in _proc_stats().items() if ppid == self.process.pid]

    def cpu_seconds(self) -> float:
        """User + system CPU time the workers have used so far."""
        assert self.process is not None
        return sum(ticks for ppid, ticks in _proc_stats().values() if ppid == self.process.pid) / CLOCK_TICKS

    def record_rss(self) -> None:
        self.rss_kib += self.worker_rss().values()

    def worker_rss(self) -> dict[int, int]:
        """``{pid: VmRSS in KiB}`` of each worker, from /proc."""
        rss = {}
        for pid in self.worker_pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
            if match:
                rss[pid] = int(match.group(1))
        return rss

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _proc_stats() -> dict[int, tuple[int, int]]:
    """``{pid: (parent pid, utime + stime in clock ticks)}`` of every process, from /proc/PID/stat."""
    stats = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
            stats[int(stat.parent.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
        except (OSError, IndexError, ValueError):
            continue
    return stats


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_servers(tmp: Path) -> list[Server]:
    """(a) raw WSGI, (b) bare Flask, (c) trackline with ./conf's logging.yaml and app.yaml, (d) stock: bare Flask
    with gunicorn's text access log; files in ``tmp``."""
    return [
        gunicorn_server("(a) raw WSGI", tmp / "a", "apps:raw_app"),
        gunicorn_server("(b) bare Flask", tmp / "b", "apps:create_flask_app()"),
        trackline_server("(c) trackline", tmp / "c"),
        stock_server("(d) stock: bare Flask + --access-logfile", tmp / "d", "apps:create_flask_app()"),
        stock_server("(e) OTel: bare Flask + OTel + --access-logfile", tmp / "e", "apps:create_otel_flask_app()"),
        served_by_trackline("(f) trackline + OTel", tmp / "f", "apps:create_otel_flask_app()"),
        served_by_trackline("(g) trackline serving (b)'s app", tmp / "g", "apps:create_flask_app()"),
    ]


def gunicorn_server(label: str, root: Path, target: str, *options: str) -> Server:
    """``target`` under plain gunicorn with the shared settings and ``options``, its files in ``root``."""
    port = free_port()
    argv = [str(BIN / "gunicorn"), "-c", str(HERE / "gunicorn_conf.py"), "--chdir", str(HERE), *options, target]
    return Server(label, root, argv, {"BENCH_BIND": f"127.0.0.1:{port}"}, port)


def stock_server(label: str, root: Path, target: str) -> Server:
    """``target`` under gunicorn with its stock text access log in ``root``."""
    return gunicorn_server(label, root, target, "--access-logfile", str(root / "access.log"))


def served_by_trackline(label: str, root: Path, target: str) -> Server:
    """trackline serving ``target`` (``--app``: the bare or the OTel-instrumented Flask app), as (c) serves the
    demo."""
    server = trackline_server(label, root, pythonpath=str(HERE))
    server.argv += ["--app", target]
    return server


def trackline_server(label: str, root: Path, **settings: object) -> Server:
    """``trackline serve`` with ./conf's logging.yaml and app.yaml, ``SHARED`` (+ ``settings``), files in ``root``."""
    port = free_port()
    shutil.copytree(ROOT / "conf", root / "conf")
    settings = {**SHARED, **settings, "bind": f"127.0.0.1:{port}", "pidfile": str(root / "run" / "trackline.pid")}
    (root / "conf" / "gunicorn.yaml").write_text(yaml.safe_dump(settings))
    env = {"TRACKLINE_LOG_DIR": str(root / "logs"), "TRACKLINE_RUN_DIR": str(root / "run")}
    return Server(label, root, [str(BIN / "trackline"), "serve", "--conf-dir", str(root / "conf")], env, port)


def wrk(url: str, seconds: float, threads: int, connections: int) -> Load:
    """Run wrk once and parse its requests/s, latency percentiles and error counts."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout

    def latency(percent: str) -> float:
        value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M).groups()
        return float(value) * UNITS[unit]

    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Load(rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
                p50_ms=latency("50"), p99_ms=latency("99"),
                requests=int(re.search(r"(\d+) requests in", out).group(1)),
                errors=errors + (int(non_2xx.group(1)) if non_2xx else 0))


def measure(server: Server, args: argparse.Namespace, seconds: float) -> Load:
    """One wrk load of ``server``, with the workers' CPU time per request."""
    cpu = server.cpu_seconds()
    load = wrk(server.url(args.path), seconds, args.threads, args.connections)
    load.cpu_us = (server.cpu_seconds() - cpu) * 1e6 / max(load.requests, 1)
    return load


def formatter_rates(tmp: Path, seconds: float) -> list[tuple[str, float, float]]:
    """Lines/s through a WatchedFileHandler for python-json-logger's JsonFormatter and trackline's.

    Both get the TrackingIdFilter and the same records: an app line ("Health check") and an access line (the
    request fields as ``extra``, like trackline.server.access). python-json-logger is given the equivalent
    fields to render (its default renders only the message and extras).
    """
    from pythonjsonlogger.json import JsonFormatter as PjlFormatter

    contract = ["asctime", "levelname", "name", "tracking_id", "message", "process"]
    access = {"remote_addr": "127.0.0.1", "protocol": "HTTP/1.1", "host": "127.0.0.1:8000",
              "request_method": "GET", "request_path": "/api/health", "query_string": "", "status_code": 200,
              "response_length": 57, "referer": None, "user_agent": "wrk", "request_time": 0.000812}
    formatters: list[tuple[str, Callable[[], logging.Formatter], Callable[[], logging.Formatter]]] = [
        ("python-json-logger JsonFormatter", lambda: PjlFormatter([*contract, "filename", "lineno", "funcName"]),
         lambda: PjlFormatter(contract)),
        ("trackline JsonFormatter", JsonFormatter, lambda: JsonFormatter(location=False)),
    ]
    token = context.enter("0b5e6f1c-7c4e-4a43-9a5e-2f3c1d9e8a77")
    rates = []
    for number, (label, app_formatter, access_formatter) in enumerate(formatters):
        rate = []
        for kind, make in (("app", app_formatter), ("access", access_formatter)):
            logger = logging.getLogger(f"bench.{number}.{kind}")
            logger.propagate = False
            logger.setLevel(logging.INFO)
            handler = logging.handlers.WatchedFileHandler(tmp / f"formatter-{number}-{kind}.log", encoding="utf-8")
            handler.setFormatter(make())
            handler.addFilter(TrackingIdFilter())
            logger.addHandler(handler)
            lines, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                for _ in range(500):
                    if kind == "app":
                        logger.info("Health check")
                    else:
                        logger.info("%s %s %s", "GET", "/api/health", 200, extra=access)
                lines += 500
            rate.append(lines / (time.perf_counter() - start))
            handler.close()
        rates.append((label, *rate))
    context.leave(token)
    return rates


def count_lines(path: Path) -> int:
    with open(path, "rb") as file:
        return sum(1 for _ in file)


#: The ratios the report gives (issue 23's targets): req/s of the first server / req/s of the second, at least.
RATIOS = (("c/b", "trackline (the demo) / bare Flask", 0.85), ("c/d", "trackline (the demo) / stock", 1.05),
          ("g/b", "trackline serving the bare app / bare Flask", 0.85),
          ("g/d", "trackline serving the bare app / stock", 1.05),
          ("f/e", "trackline + OTel / OTel + stock", 0.90))


def report(args: argparse.Namespace, servers: list[Server], formatters: list[tuple[str, float, float]]) -> str:
    """The markdown tables: per cycle, per server (medians over cycles), per JSON formatter."""
    by_key = {server.label[1]: server for server in servers}
    ratios = {name: [mine.rps / theirs.rps for mine, theirs in zip(by_key[name[0]].loads, by_key[name[2]].loads,
                                                                    strict=True)] for name, _, _ in RATIOS}
    lines = [
        f"## GET {args.path}: wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s --latency, "
        f"{args.cycles} cycles a to g interleaved; gunicorn gevent, {SHARED['workers']} workers, "
        f"{SHARED['worker_connections']} worker_connections, {os.cpu_count()} CPUs shared with wrk",
        "",
        "| cycle | " + " | ".join(f"({key}) req/s" for key in by_key) + " | "
        + " | ".join(name for name, _, _ in RATIOS) + " |",
        "|---|" + "---:|" * (len(servers) + len(RATIOS)),
    ]
    for cycle, loads in enumerate(zip(*(server.loads for server in servers), strict=True)):
        lines.append(f"| {cycle + 1} | " + " | ".join(f"{load.rps:.0f}" for load in loads) + " | "
                     + " | ".join(f"{values[cycle]:.2f}" for values in ratios.values()) + " |")
    lines += [
        "| median | " + " | ".join(f"{median(server, 'rps'):.0f}" for server in servers) + " | "
        + " | ".join(f"**{statistics.median(values):.2f}**" for values in ratios.values()) + " |",
        "",
        "| server (medians over cycles) | req/s | p50 ms | p99 ms | worker CPU us/request | errors "
        "| RSS per worker MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for server in servers:
        rss = ", ".join(f"{kib / 1024:.1f}" for kib in server.rss_kib[-SHARED["workers"]:]) or "?"
        errors = sum(load.errors for load in server.loads)
        lines.append(f"| {server.label} | {median(server, 'rps'):.0f} | {median(server, 'p50_ms'):.2f} | "
                     f"{median(server, 'p99_ms'):.2f} | {median(server, 'cpu_us'):.0f} | {errors} | {rss} |")
    lines += ["", "| ratio | what | median req/s ratio | target | worker CPU per request, second / first |",
              "|---|---|---:|---:|---:|"]
    for name, what, target in RATIOS:
        mine, theirs = by_key[name[0]], by_key[name[2]]
        value = statistics.median(ratios[name])
        verdict = "met" if value >= target else "not met"
        lines.append(f"| {name} | {what} | **{value:.2f}** | >= {target:.2f} ({verdict}) | "
                     f"{median(theirs, 'cpu_us') / median(mine, 'cpu_us'):.2f} |")
    c, d = by_key["c"], by_key["d"]
    logs = c.root / "logs"
    lines += [
        "",
        f"trackline (c) wrote {count_lines(logs / 'access.log')} access lines and {count_lines(logs / 'app.log')} "
        f"app lines for {sum(load.requests for load in c.loads) + c.warmup_requests} requests counted by wrk; "
        f"stock gunicorn wrote {count_lines(d.root / 'access.log')} text access lines.",
        "",
        "| JSON formatter (+ TrackingIdFilter, WatchedFileHandler) | app lines/s | us/app line | access lines/s "
        "| us/access line |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, app_rate, access_rate in formatters:
        lines.append(f"| {label} | {app_rate:.0f} | {1e6 / app_rate:.1f} | {access_rate:.0f} | "
                     f"{1e6 / access_rate:.1f} |")
    return "\n".join(lines)


def median(server: Server, attribute: str) -> float:
    return statistics.median(getattr(load, attribute) for load in server.loads)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short loads (2 s, 3 cycles): about 30 s in all")
    parser.add_argument("--duration", type=float, help="seconds of load per server per cycle (default 10)")
    parser.add_argument("--cycles", type=int, default=3, help="interleaved a, b, c, d cycles (default 3, minimum 3)")
    parser.add_argument("--path", choices=("/api/health", "/api/names"),
                        help="route to load (default /api/health: trackline logs an app line and an access line; with"
                             " --all /api/names, issue 23's)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--max-requests", metavar="N,N,...", type=lambda text: [int(n) for n in text.split(",")],
                        help="instead: trackline servers differing only in max_requests (jitter N/10), side by side")
    parser.add_argument("--memory", action="store_true",
                        help="instead: each worker's RSS after 10,000 requests and each quarter of --memory-requests,"
                             " trackline with and without OTel")
    parser.add_argument("--memory-requests", type=int, default=200_000, metavar="N",
                        help="requests for --memory (default 200000)")
    parser.add_argument("--all", action="store_true",
                        help="everything issue 23 measures, one after the other in one run: the request cycles (a to"
                             " g), --memory, then --trace (300 MB trees unless --trace-mb says otherwise)")
    parser.add_argument("--layers", nargs="*", metavar="PIECE",
                        help="instead: what each piece of trackline's layer costs a loaded worker, (g) served whole and"
                             " without each PIECE (default: all of benchmarks/layers.py's PIECES), beside (b) and (d)")
    trace_bench.add_arguments(parser)
    sql_bench.add_arguments(parser)
    parser.add_argument("--celery-publish", action="store_true",
                        help="instead: what queueing a Celery task costs a request, with and without trackline's"
                             " instrumentation (benchmarks/celery_publish.py)")
    args = parser.parse_args(argv)
    if args.cycles < 3:
        parser.error("--cycles must be at least 3")
    if args.memory_requests <= MEMORY_BASELINE:
        parser.error(f"--memory-requests must be more than the baseline's {MEMORY_BASELINE}")
    if args.duration is None:
        args.duration = 2.0 if args.quick else 10.0
    if args.path is None:
        args.path = "/api/names" if args.all or args.layers is not None else "/api/health"
    if args.trace_mb is None:
        args.trace_mb = 300 if args.all else 200
    args.warmup = 1.0 if args.quick else 3.0
    args.formatter_seconds = 0.5 if args.quick else 2.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.trace:
        return trace_bench.main(args)
    if args.sql:
        return sql_bench.main(args)
    if args.celery_publish:
        from celery_publish import run as celery_publish

        print(celery_publish(publishes=500 if args.quick else 5000, cycles=args.cycles))
        return 0
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (scripts/bench installs it with apt-get)")
    with tempfile.TemporaryDirectory(prefix="trackline-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if args.max_requests:
            servers = [trackline_server(f"max_requests {n}", tmp / f"max-{n}", max_requests=n,
                                        max_requests_jitter=n // 10) for n in args.max_requests]
            run_cycles(args, servers)
            print(max_requests_report(args, servers))
            return 0
        if args.memory:
            print(memory_report(args, tmp))
            return 0
        if args.layers is not None:
            from layers import report as layers_report

            print(layers_report(args, tmp))
            return 0
        servers = make_servers(tmp / "requests")
        run_cycles(args, servers)
        formatters = formatter_rates(tmp, args.formatter_seconds)
        print(report(args, servers, formatters), flush=True)
        if args.all:
            print("\n" + memory_report(args, tmp / "memory") + "\n", flush=True)
    return trace_bench.main(args) if args.all else 0


def run_cycles(args: argparse.Namespace, servers: list[Server]) -> None:
    """Start ``servers``, warm them up, load each in turn for ``args.cycles`` cycles, stop them."""
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_ready(args.path)
            server.warmup_requests = measure(server, args, args.warmup).requests
        for cycle in range(1, args.cycles + 1):
            for server in servers:
                load = measure(server, args, args.duration)
                server.loads.append(load)
                server.record_rss()
                print(f"==> cycle {cycle} {server.label}: {load.rps:.0f} req/s, p50 {load.p50_ms:.2f} ms, "
                      f"p99 {load.p99_ms:.2f} ms, worker CPU {load.cpu_us:.0f} us/request",
                      file=sys.stderr, flush=True)
    finally:
        for server in servers:
            server.stop()


#: The first RSS reading of ``--memory``: after the caches and pools of a worker are warm.
MEMORY_BASELINE = 10_000

#: OpenTelemetry's batch span processor exporting only when its queue is full (2048 spans, the SDK's default
#: bound): the queue is at its fullest within the first few thousand requests, so the baseline holds it.
FULL_SPAN_QUEUE = {"OTEL_BSP_MAX_QUEUE_SIZE": "2048", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2048"}


def memory_report(args: argparse.Namespace, tmp: Path) -> str:
    """Each worker's RSS after ``MEMORY_BASELINE`` requests and at each quarter of ``args.memory_requests``, for
    trackline with and without OTel, and OTel's app without trackline for reference, one server after the other
    (a flat line is a growth of at most 2 MiB).

    A worker's RSS is the high-water mark of what it ever held at once (freed memory mostly stays with the
    process), so a transient peak raises it for good. With OpenTelemetry's defaults, the spans its
    ``BatchSpanProcessor`` holds while its export greenlet waits for its turn (up to 2048, 3 to 4 KiB each)
    reach a new high now and then, each a step that stays. The two OTel servers therefore run twice: as
    configured by default, and with ``FULL_SPAN_QUEUE``, where the queue is at its bound before the baseline,
    so that what grows after it is everything else. Growth that keeps coming also shows over the second half,
    the last column."""
    servers = [trackline_server("(c) trackline", tmp / "c")]
    for suffix, env in (("", {}), (", OTel's span queue full at once", FULL_SPAN_QUEUE)):
        folder = "-full-queue" if env else ""
        otel_servers = (served_by_trackline(f"(f) trackline + OTel{suffix}", tmp / f"f{folder}",
                                            "apps:create_otel_flask_app()"),
                        stock_server(f"(e) OTel + --access-logfile{suffix}", tmp / f"e{folder}",
                                     "apps:create_otel_flask_app()"))
        for server in otel_servers:
            server.env.update(env)
        servers += otel_servers
    total = args.memory_requests
    checkpoints = sorted({MEMORY_BASELINE, *(total * quarter // 4 for quarter in range(1, 5)
                                              if total * quarter // 4 > MEMORY_BASELINE)})
    half = min(n for n in checkpoints if n >= total // 2)
    lines = [f"## Memory: GET {args.path}, wrk -t{args.threads} -c{args.connections}; RSS per worker, MiB", "",
             "| server | " + " | ".join(f"after {n:,}" for n in checkpoints)
             + f" | growth {MEMORY_BASELINE:,} -> {total:,} (max) | growth {half:,} -> {total:,} (max) |",
             "|---|" + "---:|" * (len(checkpoints) + 2)]
    for server in servers:
        try:
            readings = rss_curve(server, args, checkpoints)
        finally:
            server.stop()
        growth = max(rss[-1] - rss[0] for rss in readings.values()) / 1024
        late = max(rss[-1] - rss[checkpoints.index(half)] for rss in readings.values()) / 1024
        lines.append(f"| {server.label} | "
                     + " | ".join(", ".join(f"{rss[i] / 1024:.1f}" for rss in readings.values())
                                  for i in range(len(checkpoints)))
                     + f" | **{growth:.2f}** | {late:.2f} |")
    lines += ["", "OTel's span queue full at once: " + " ".join(f"{k}={v}" for k, v in FULL_SPAN_QUEUE.items())
              + " (the queue's default bound; the export waits for it to fill), so that its spans are in the"
              f" first reading and what grows after {MEMORY_BASELINE:,} requests is everything else."]
    return "\n".join(lines)


def rss_curve(server: Server, args: argparse.Namespace, checkpoints: list[int]) -> dict[int, list[int]]:
    """Start ``server``, load it, and read each worker's RSS (KiB) once it has served each of ``checkpoints``:
    ``{pid: [KiB, ...]}``. A worker gone or new at a reading (one that died and was replaced) ends the run."""
    server.start()
    server.wait_ready(args.path)
    served, rps, readings = 0, 1000.0, {}
    for checkpoint in checkpoints:
        while served < checkpoint:  # loads of 1 to 3 s, ending near the checkpoint
            seconds = min(3, max(1, round((checkpoint - served) / rps)))  # wrk takes whole seconds
            load = wrk(server.url(args.path), seconds, args.threads, args.connections)
            served, rps = served + load.requests, max(load.rps, 1.0)
        rss = server.worker_rss()
        if readings and set(rss) != set(readings):
            raise SystemExit(f"{server.label}: its workers changed ({sorted(readings)} -> {sorted(rss)}) at {served}"
                             f" requests; see {server.root}")
        for pid, kib in rss.items():
            readings.setdefault(pid, []).append(kib)
        print(f"==> {server.label}: {served} requests, RSS {rss} KiB", file=sys.stderr, flush=True)
    return readings


def max_requests_report(args: argparse.Namespace, servers: list[Server]) -> str:
    """req/s per cycle of trackline servers that differ in ``max_requests``, as ratios to the first; the worker
    restarts each had, and what one restart costs (the requests it did not serve, in seconds of one server)."""
    base, *others = servers
    lines = [
        f"## max_requests: GET {args.path}, wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s, "
        f"{args.cycles} cycles interleaved; trackline, gunicorn gevent, {SHARED['workers']} workers, "
        f"{os.cpu_count()} CPUs shared with wrk",
        "",
        "| cycle | " + " | ".join(f"{s.label} req/s" for s in servers) + " | "
        + " | ".join(f"{s.label} / {base.label}" for s in others) + " |",
        "|---|" + "---:|" * (2 * len(servers) - 1),
    ]
    for cycle, loads in enumerate(zip(*(s.loads for s in servers), strict=True), 1):
        lines.append(f"| {cycle} | " + " | ".join(f"{load.rps:.0f}" for load in loads) + " | "
                     + " | ".join(f"{load.rps / loads[0].rps:.3f}" for load in loads[1:]) + " |")
    lines += ["", "| server | median req/s | median ratio | worker restarts | seconds of load per restart "
              "| cost per restart (s of full load) | RSS per worker MiB |", "|---|---:|---:|---:|---:|---:|---:|"]
    loaded = args.warmup + args.cycles * args.duration  # restarts in the warm-up count too
    for server in servers:
        ratio = statistics.median(mine.rps / theirs.rps for mine, theirs in zip(server.loads, base.loads, strict=True))
        restarts = count_restarts(server)
        cost = f"{(1 - ratio) * loaded / restarts:.2f}" if restarts and server is not base else "-"
        every = f"{loaded / restarts:.1f}" if restarts else "-"
        rss = ", ".join(f"{kib / 1024:.1f}" for kib in server.rss_kib[-SHARED["workers"]:]) or "?"
        lines.append(f"| {server.label} | {median(server, 'rps'):.0f} | {ratio:.3f} | {restarts} | {every} | {cost} "
                     f"| {rss} |")
    return "\n".join(lines)


def count_restarts(server: Server) -> int:
    """How often a worker of ``server`` restarted after ``max_requests``, by its error.log."""
    path = server.root / "logs" / "error.log"
    return path.read_text(errors="replace").count("Autorestarting worker") if path.exists() else 0


if __name__ == "__main__":
    sys.exit(main())
