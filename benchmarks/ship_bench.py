"""scripts/bench --ship: shipping throughput, plain RELP against TLS (docs/benchmarks.md).

One file of LINES JSON lines of about 300 bytes, then a log host and one sender (the shipped snippets, rendered by
scripts/installer as scripts/install renders them, on 127.0.0.1) per mode: the time from the sender's start until
the central file holds every line, best of ROUNDS.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests")]

from installer.options import Address, Tls  # noqa: E402
from installer.rsyslog import loghost_listeners, relp_tls, render_text, ship_inputs  # noqa: E402
from support.tls import Ca  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def snippet(name: str, **words: object) -> str:
    return render_text((ROOT / "rsyslog" / name).read_text(), name, **words)


def rsyslogd(directory: Path, hostname: str, config: str) -> subprocess.Popen[bytes]:
    """An ``rsyslogd -n`` with ``config`` and the limits, its work directory in ``directory``."""
    (directory / "work").mkdir(parents=True)
    conf = directory / "rsyslog.conf"
    conf.write_text(f'global(workDirectory="{directory / "work"}" localHostname="{hostname}")\n'
                    + snippet("trackline-limits.conf") + config)
    with (directory / "out").open("wb") as out:
        return subprocess.Popen(["rsyslogd", "-n", "-f", str(conf), "-i", str(directory / "pid")], stdout=out,
                                stderr=subprocess.STDOUT)


def count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as file:
        return sum(block.count(b"\n") for block in iter(lambda: file.read(1 << 20), b""))


def one_run(tmp: Path, log: Path, lines: int, tls: tuple[Tls, Tls] | None) -> float:
    """Seconds from the sender's start until the log host has written every line."""
    port, central = free_port(), tmp / "central"
    loghost = rsyslogd(tmp / "loghost", "loghost", snippet(
        "trackline-loghost.conf", LISTEN_ADDRESS="127.0.0.1", CENTRAL_DIR=central) + loghost_listeners(
        "127.0.0.1", [Address(f"web-1:{port}", "web-1", port)], tls and tls[0]))
    sender = None
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        start = time.monotonic()
        sender = rsyslogd(tmp / "sender", "web-1", snippet(
            "trackline-ship.conf", SHIP_TO_HOST="127.0.0.1", SHIP_TO_PORT=port,
            TLS=relp_tls(tls and tls[1], "loghost")) + ship_inputs([str(log)]))
        while count_lines(central / "web-1" / "access.log") < lines:
            if time.monotonic() - start > 600:
                sys.exit(f"the log host did not get {lines} lines in 600 s: see {tmp}/*/out")
            time.sleep(0.05)
        return time.monotonic() - start
    finally:
        for process in (sender, loghost):
            if process is not None:
                process.send_signal(signal.SIGTERM)
                process.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ship", action="store_true")
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trackline-ship-bench.") as name:
        tmp = Path(name)
        log = tmp / "logs" / "access.log"
        log.parent.mkdir()
        record = {"@timestamp": "2026-12-07T12:00:00.000+00:00", "level": "INFO", "logger": "gunicorn.access",
                  "tracking_id": "", "request_method": "GET", "request_path": "/api/names", "status_code": 200,
                  "message": "GET /api/names 200", "user_agent": "bench/1.0 " + "x" * 60}
        with log.open("w") as out:
            for n in range(args.lines):
                record["tracking_id"] = f"ship-{n:08d}"
                out.write(json.dumps(record) + "\n")
        size = log.stat().st_size
        ca = Ca(tmp / "ca")
        modes = {"plain RELP": None, "RELP over TLS": (ca.issue("loghost"), ca.issue("web-1"))}
        print(f"{args.lines:,} lines of {size // args.lines} bytes, one sender to a log host on 127.0.0.1, "
              f"best of {args.rounds}\n")
        print("| mode | seconds (each round) | lines/s | MB/s |\n|---|---:|---:|---:|")
        for mode, tls in modes.items():
            times = []
            for n in range(args.rounds):
                run_dir = tmp / f"{mode.split()[0]}-{n}"
                run_dir.mkdir()
                times.append(one_run(run_dir, log, args.lines, tls))
            best = min(times)
            print(f"| {mode} | {best:.2f} ({', '.join(f'{t:.2f}' for t in times)}) | {args.lines / best:,.0f} | "
                  f"{size / best / 1e6:.1f} |")


if __name__ == "__main__":
    main()
