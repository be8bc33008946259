"""Log shipping with Debian's rsyslog over RELP with TLS: real rsyslogd senders and a log host on loopback ports.

Each "host" is a ``trackline serve`` plus an ``rsyslogd`` running the shipped rsyslog/trackline-ship.conf with
its own ``localHostname``, work directory and certificate (tests/support/tls.py: one private CA); the log host is
an ``rsyslogd`` running rsyslog/trackline-loghost.conf with a listener per sender. The snippets are the shipped
files rendered by scripts/installer's own functions, as scripts/install renders them (with the test's paths);
the wrapper config stands in for Debian's /etc/rsyslog.conf.
"""

from __future__ import annotations

import functools
import glob
import grp
import gzip
import importlib.util
import json
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import pytest

from installer.layout import SHIPPED_LOGS
from installer.options import Address, Tls
from installer.rsyslog import SENDER_LIMIT, loghost_listeners, relp_tls, render_text, ship_inputs
from support.celery_worker import REDIS, Redis, Worker, done, new_worker
from support.conf import edit_yaml
from support.edge import Edge, require_nginx
from support.http import request
from support.load import Load
from support.paths import REPO, TRACKLINE
from support.processes import free_port, stop_process
from support.relay import relay
from support.relp import Relp
from support.requirements import unavailable
from support.server import Server
from support.tls import Ca
from support.waiting import wait_until
from trackline.logs.formatter import JsonFormatter
from trackline.logs.linecap import DEFAULT_MAX_LINE_BYTES

LIMITS = "trackline-limits.conf"
SHIP = "trackline-ship.conf"
LOGHOST = "trackline-loghost.conf"
RELP_WINDOW = 1024  # omrelp's windowSize in trackline-ship.conf
SHIPPED_NAMES = ("app.log", "access.log", "error.log", "worker.log", "trackline-access.log")  # the log host's list
SENDERS = ("web-a", "web-b", "edge", "worker")  # the log host's listeners, unless a test names its own
LOGHOST_NAME = "loghost"  # the name in the log host's certificate, which each sender checks


@pytest.fixture(autouse=True)
def _needs_rsyslog() -> None:
    if not shutil.which("rsyslogd") or not glob.glob("/usr/lib/*/rsyslog/imrelp.so"):
        unavailable("needs Debian's rsyslog and rsyslog-relp (scripts/test installs them)")


def render(snippet: str, **words: str) -> str:
    """The shipped ``rsyslog/snippet`` with each ``@WORD@`` replaced, as scripts/install does."""
    text = (REPO / "rsyslog" / snippet).read_text()
    for word in words:
        assert f"@{word}@" in text, f"{snippet} has no @{word}@"
    return render_text(text, snippet, **words)


@dataclass
class Rsyslogd:
    """One ``rsyslogd -n`` with its config, pid file and work directory (queues, imfile state) under ``root``."""

    root: Path
    hostname: str
    snippets: dict[str, str]  # file name -> rendered text
    ports: dict[str, int] = field(default_factory=dict)  # the log host's RELP port of each sender, to wait for
    process: subprocess.Popen[bytes] | None = None

    @property
    def work_dir(self) -> Path:
        return self.root / "work"

    @property
    def output(self) -> Path:
        return self.root / "rsyslogd.out"

    @property
    def stats_file(self) -> Path:
        """impstats' counters, every second: ``Tue Dec  1 19:51:14 2026: {"name": ..., "size": ...}``."""
        return self.root / "stats"

    def queue_empty(self, after: float) -> bool:
        """Whether impstats said, at a time past ``after`` (epoch s), that the ship queue holds nothing."""
        latest: dict[str, tuple[float, dict[str, Any]]] = {}
        for line in self.stats_file.read_text().splitlines():
            when, _, record = line.partition(": ")
            stats = json.loads(record)
            latest[stats["name"]] = (time.mktime(time.strptime(when)), stats)
        queues = [latest.get(name) for name in ("trackline_ship queue", "trackline_ship queue[DA]")]
        return all(q is not None and q[0] > after and q[1]["size"] == 0 for q in queues)

    def configure(self) -> Path:
        """Write the snippets and a main config that includes them (Debian's rsyslog.conf does the same)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        main = [f'global(workDirectory="{self.work_dir}" localHostname="{self.hostname}")',
                f'module(load="impstats" interval="1" format="json" log.syslog="off" log.file="{self.stats_file}")']
        for name, text in self.snippets.items():
            (self.root / name).write_text(text)
            main.append(f'include(file="{self.root / name}")')
        conf = self.root / "rsyslog.conf"
        conf.write_text("\n".join(main) + "\n")
        check = subprocess.run(["rsyslogd", "-N1", "-f", str(conf)], capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, f"rsyslogd -N1 rejects {conf}:\n{check.stdout}{check.stderr}"
        return conf

    def start(self) -> Rsyslogd:
        conf = self.configure()
        pid_file = self.root / "rsyslogd.pid"
        pid_file.unlink(missing_ok=True)
        with self.output.open("ab") as output:
            self.process = subprocess.Popen(["rsyslogd", "-n", "-f", str(conf), "-i", str(pid_file)],
                                            stdout=output, stderr=subprocess.STDOUT)

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"rsyslogd exited with {self.process.returncode}: {self.output.read_text()}")
            if not pid_file.exists():
                return False
            try:
                for port in self.ports.values():
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_until(ready, f"rsyslogd {self.hostname} to start", timeout=30)
        return self

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop it (our own child, by PID) and wait; kill it if it hangs."""
        stop_process(self.process, 60, sig)


class Stoppable(Protocol):
    def stop(self) -> object: ...


@dataclass
class Site:
    """A log host and the sending hosts of one test, all on 127.0.0.1."""

    root: Path
    make_server: Callable[..., Server]
    tls: bool = True  # False: --plain
    daemons: list[Stoppable] = field(default_factory=list)  # all the test started but servers, stopped at its end
    loghost: Rsyslogd | None = None
    senders: dict[str, Rsyslogd] = field(default_factory=dict)
    servers: dict[str, Server] = field(default_factory=dict)
    shipped: dict[str, list[Path]] = field(default_factory=dict)  # hostname -> the directories its sender ships

    @property
    def central_dir(self) -> Path:
        return self.root / "central"

    @functools.cached_property
    def ca(self) -> Ca:
        return Ca(self.root / "ca")

    def certificate(self, name: str) -> Tls | None:
        """A certificate of the site's CA for ``name``, or None on a --plain site."""
        return self.ca.issue(name) if self.tls else None

    def start_loghost(self, *senders: str) -> Rsyslogd:
        """The log host, with a listener for each of ``senders`` (default SENDERS) on a port of its own."""
        ports = {name: free_port() for name in senders or SENDERS}
        words = {"LISTEN_ADDRESS": "127.0.0.1", "CENTRAL_DIR": str(self.central_dir)}
        listeners = loghost_listeners("127.0.0.1", [Address(f"{name}:{port}", name, port) for name, port in
                                                    ports.items()], self.certificate(LOGHOST_NAME))
        snippets = {LIMITS: render(LIMITS), LOGHOST: render(LOGHOST, **words) + listeners}
        self.loghost = Rsyslogd(self.root / "loghost", "loghost", snippets, ports)
        self.daemons.append(self.loghost)
        return self.loghost.start()

    def ship_snippet(self, hostname: str, files: list[Path], tls: Tls | None) -> str:
        """trackline-ship.conf for a sender of ``files`` to the log host's port for ``hostname``, checking that
        the log host's certificate is LOGHOST_NAME's."""
        assert self.loghost is not None
        words = {"SHIP_TO_HOST": "127.0.0.1", "SHIP_TO_PORT": str(self.loghost.ports[hostname]),
                 "TLS": relp_tls(tls, LOGHOST_NAME)}
        return render(SHIP, **words) + ship_inputs(map(str, files))

    def add_sender(self, hostname: str, log_dir: Path, nginx_log: Path | None = None) -> Rsyslogd:
        """A started sender named ``hostname`` that ships ``log_dir``'s files and, on an edge, nginx's JSON log
        ``nginx_log`` to the log host, each by its fixed path, as scripts/install configures it: with the
        shipper's own size limit, or on an edge Debian's rsyslog with trackline-limits.conf."""
        log_dir.mkdir(parents=True, exist_ok=True)
        files = [log_dir / name for name in SHIPPED_LOGS] + ([nginx_log] if nginx_log else [])
        limit = render(LIMITS) if nginx_log else SENDER_LIMIT
        snippets = {SHIP: limit + self.ship_snippet(hostname, files, self.certificate(hostname))}
        sender = Rsyslogd(self.root / f"{hostname}-rsyslog", hostname, snippets)
        self.daemons.append(sender)
        self.shipped[hostname] = [log_dir, *([nginx_log.parent] if nginx_log else [])]
        self.senders[hostname] = sender.start()
        return sender

    def add_host(self, hostname: str, settings: dict[str, str] | None = None) -> Server:
        """A started trackline (app.yaml plus ``settings``, e.g. DOWNSTREAM_URL) on a host named ``hostname``."""
        server = self.make_server(name=hostname)
        if settings:
            edit_yaml(server.conf_dir / "app.yaml", lambda app: app.update(settings))
        self.add_sender(hostname, server.log_dir)
        self.servers[hostname] = server.start()
        return server

    def add_edge(self, hostname: str, upstream: Server) -> Edge:
        """Debian's nginx with the shipped edge config in front of ``upstream``, on a host named ``hostname``
        (its /var/log/trackline, which the sender follows too, stays empty)."""
        edge = Edge(self.root / hostname, [f"127.0.0.1:{upstream.port}"])
        self.add_sender(hostname, edge.dir / "trackline", edge.access_log)
        self.daemons.append(edge)
        return edge.start()

    def add_worker(self, hostname: str, broker_url: str) -> Worker:
        """A started ``trackline worker`` (one process) on ``broker_url``, on a host named ``hostname``."""
        worker = new_worker(self.root / hostname, broker_url, concurrency=1)
        self.add_sender(hostname, worker.log_dir)
        self.daemons.append(worker)
        return worker.start()

    def stop_all(self) -> None:
        for daemon in self.daemons:
            daemon.stop()


@pytest.fixture
def site(tmp_path: Path, make_server: Callable[..., Server]) -> Iterator[Site]:
    site = Site(tmp_path, make_server)
    yield site
    site.stop_all()


def file_lines(paths: list[Path]) -> list[bytes]:
    """The lines of ``paths`` in order (gzip-compressed ones too), each with its newline."""
    lines: list[bytes] = []
    for path in paths:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        lines.extend(data.splitlines(keepends=True))
    return lines


def with_rotations(directory: Path) -> dict[str, list[bytes]]:
    """Each file of SHIPPED_NAMES in ``directory`` -> its lines, the rotated files' (oldest first) then its own."""
    return {path.name: file_lines([*sorted(directory.glob(f"{path.name}-*")), path])
            for path in sorted(directory.glob("*.log")) if path.name in SHIPPED_NAMES}


def as_central(hostname: str, line: bytes) -> bytes:
    """``line`` as the log host writes it: ``"hostname"`` spliced in right after the opening brace (a line
    that is not a JSON object becomes the ``message`` of one; the tests' such lines need no escape but ``"``)."""
    head = b'{"hostname":"' + hostname.encode() + b'",'
    if line.startswith(b"{"):
        return head + line[1:]
    assert b"\\" not in line and b"/" not in line, line
    return head + b'"message":"' + line.rstrip(b"\n").replace(b'"', b'\\"') + b'"}\n'


@dataclass
class Delivery:
    """What reached the central tree of one host, against what its trackline wrote."""

    lost: dict[str, int]
    duplicates: dict[str, int]
    foreign: dict[str, list[bytes]]  # central lines that the host never wrote (changed bytes, cut lines)

    def __str__(self) -> str:
        return f"lost {self.lost}, duplicates {self.duplicates}, foreign {[v[:3] for v in self.foreign.values()]}"


def shipped_lines(site: Site, hostname: str) -> dict[str, list[bytes]]:
    """What ``hostname`` wrote to the files its sender ships: file name -> its lines, its rotations' first."""
    return {name: lines for directory in site.shipped[hostname] for name, lines in with_rotations(directory).items()}


def delivery(site: Site, hostname: str) -> Delivery:
    written = shipped_lines(site, hostname)
    central = with_rotations(site.central_dir / hostname)
    lost, duplicates, foreign = {}, {}, {}
    for name in sorted(written.keys() | central.keys()):
        want = Counter(as_central(hostname, line) for line in written.get(name, []))
        got = Counter(central.get(name, []))
        lost[name] = sum((want - got).values())
        duplicates[name] = sum((got - want).values()) - len(set(got) - set(want))
        foreign[name] = [line for line in got if line not in want]
    return Delivery({k: v for k, v in lost.items() if v}, {k: v for k, v in duplicates.items() if v},
                    {k: v for k, v in foreign.items() if v})


def wait_delivered(site: Site, hostname: str, timeout: float = 120) -> Delivery:
    """Wait until every line the host wrote is in the central tree (its sender drains its queue)."""
    result: list[Delivery] = []

    def arrived() -> bool:
        result[:] = [delivery(site, hostname)]
        return not result[0].lost

    try:
        wait_until(arrived, f"{hostname}'s lines to reach the log host", timeout=timeout)
    except pytest.fail.Exception:
        pytest.fail(f"{hostname}: {result[0]}")
    return result[0]


def shipping_load(server: Server, prefix: str, rate: float, limit: int = 20000) -> Load:
    """4 clients sending GET /api/names, each request with its own tracking ID, at most ``rate``/s, until the
    block ends or ``limit`` requests; every answer a 200 carrying its ID."""
    return Load(server.port, (f"{prefix}-{n:05d}" for n in range(limit)), rate=rate, expect=200)


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "plain"])
def test_every_line_of_two_hosts_reaches_the_log_host_once_and_unchanged(site: Site, tls: bool) -> None:
    site.tls = tls
    site.start_loghost()
    for hostname in ("web-a", "web-b"):
        site.add_host(hostname)
    for hostname, server in site.servers.items():
        with shipping_load(server, hostname, rate=1000, limit=1500) as load:
            load.wait_sent(1500)
        # An access line longer than rsyslog's default 8 KiB message limit, with slashes JSON may escape.
        assert server.get("/api/names", {"User-Agent": "x/" * 4000}).status == 200
        # UTF-8, a DEL and an HTML end tag, and a line that is not JSON, in a shipped file another program writes;
        # and a file the sender does not read.
        with (server.log_dir / "worker.log").open("w", encoding="utf-8") as other:
            other.write(json.dumps({"message": "caf\u00e9 \x7f </a>"}, ensure_ascii=False) + "\n")
            other.write('not JSON, "quoted"\n')
        (server.log_dir / "other.log").write_text('{"message": "not shipped"}\n' * 3)
    for hostname, server in site.servers.items():
        assert server.stop() == 0
        result = wait_delivered(site, hostname)
        assert not result.duplicates and not result.foreign, result
        # Exactly once and in order: each central file is its source file, line for line, plus the hostname.
        written = with_rotations(server.log_dir)
        assert {"access.log", "error.log", "worker.log"} <= set(written), written.keys()
        central = with_rotations(site.central_dir / hostname)
        assert dict(central.items()) == {
            name: [as_central(hostname, line) for line in lines] for name, lines in written.items() if lines}
        # other.log is not one of the files the sender reads (its paths are fixed): none of it was sent.
        assert sorted(site.central_dir.joinpath(hostname).iterdir()) == sorted(
            site.central_dir.joinpath(hostname, name) for name in central)
        for name in ("worker.log", "other.log"):  # not trackline's: make_server checks its files are JSON lines
            (server.log_dir / name).unlink()


def dropped(site: Site, hostname: str) -> list[dict[str, Any]]:
    """The log host's records of the lines of ``hostname`` it did not store."""
    path = site.central_dir / hostname / "dropped.log"
    return [json.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def trace(site: Site, tracking_id: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``trackline trace ID --log-dir CENTRAL``, as an operator runs it on the log host."""
    return subprocess.run([str(TRACKLINE), "trace", tracking_id, "--log-dir", str(site.central_dir), *args],
                          capture_output=True, text=True, timeout=60)


def report(record_property: Callable[[str, object], None], site: Site, hostname: str, result: Delivery) -> None:
    """Put the duplicates RELP delivered into the test report (junit property and -s output), and check that
    ``trackline trace`` prints each duplicated line once."""
    record_property(f"{hostname}_duplicates", sum(result.duplicates.values()))
    print(f"{hostname}: {sum(result.duplicates.values())} duplicate lines {result.duplicates}")
    central = with_rotations(site.central_dir / hostname)
    doubled = [line for lines in central.values() for line, n in Counter(lines).items() if n > 1]
    for line in doubled[:5]:
        tracking_id = json.loads(line)["tracking_id"]
        assert tracking_id, line  # a line outside a request: nothing to trace
        printed = trace(site, tracking_id).stdout.splitlines(keepends=True)
        assert sorted(line.encode() for line in printed) == sorted(central_lines_of(site, hostname, tracking_id)), (
            f"trace {tracking_id}")


def central_lines_of(site: Site, hostname: str, tracking_id: str) -> list[bytes]:
    """The lines with ``tracking_id`` that ``hostname`` wrote, each as the log host writes it."""
    return [as_central(hostname, line) for lines in shipped_lines(site, hostname).values() for line in lines
            if json.loads(line)["tracking_id"] == tracking_id]


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_log_host_away_for_5s_under_load_loses_no_line(site: Site, how: signal.Signals,
                                                       record_property: Callable[[str, object], None]) -> None:
    loghost = site.start_loghost()
    server = site.add_host("web-a")
    with shipping_load(server, "outage", rate=300) as load:
        load.wait_sent(300)
        loghost.stop(how)
        during = load.sent
        time.sleep(6)  # the outage itself: the load goes on meanwhile
        assert load.sent > during + 500, "the load stalled while the log host was away"
        loghost.start()
        load.wait_sent(load.sent + 600)
    assert server.stop() == 0
    result = wait_delivered(site, "web-a", timeout=180)
    assert not result.foreign, result
    report(record_property, site, "web-a", result)


@pytest.mark.slow
@pytest.mark.parametrize("loghost_up", [True, False], ids=["log-host-up", "log-host-down"])
def test_sender_restarted_under_load_loses_no_line(site: Site, loghost_up: bool,
                                                   record_property: Callable[[str, object], None]) -> None:
    loghost = site.start_loghost()
    server = site.add_host("web-a")
    sender = site.senders["web-a"]
    with shipping_load(server, "restart", rate=300) as load:
        load.wait_sent(300)
        if not loghost_up:
            loghost.stop()
            load.wait_sent(load.sent + 300)  # queued in the sender, which then stops with them
        sender.stop()
        load.wait_sent(load.sent + 300)  # written while no rsyslogd follows the files
        sender.start()
        load.wait_sent(load.sent + 300)
        if not loghost_up:
            loghost.start()
        load.wait_sent(load.sent + 300)
    assert server.stop() == 0
    if loghost_up:
        result = wait_delivered(site, "web-a", timeout=180)
    else:
        # rsyslog's known limit (docs/log-host.md): the lines omrelp had sent and the log host had not yet
        # answered when the session broke are lost if rsyslogd stops before the session is back.
        now = time.time() + 1  # impstats' times are whole seconds
        wait_until(lambda: sender.queue_empty(now), "the sender's queue to drain", timeout=180)
        result = delivery(site, "web-a")
        assert sum(result.lost.values()) <= RELP_WINDOW, result
        print(f"web-a: {sum(result.lost.values())} lines lost (at most the RELP window, {RELP_WINDOW})")
    assert not result.foreign, result
    report(record_property, site, "web-a", result)


def logrotate_rules(name: str, dest: Path, replace: dict[str, str]) -> Path:
    """The shipped ``logrotate/name`` with ``replace``'s texts (paths, user, the reload command) swapped."""
    rules = (REPO / "logrotate" / name).read_text()
    for old, new in replace.items():
        assert old in rules, f"logrotate/{name} has no {old!r}"
        rules = rules.replace(old, new)
    dest.write_text(rules)
    return dest


def logrotate(rules: Path) -> None:
    done = subprocess.run(["logrotate", "--force", "--state", str(rules.with_suffix(".state")), str(rules)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr, done.stderr


@pytest.fixture
def _needs_logrotate() -> None:
    if not shutil.which("logrotate"):
        unavailable("needs Debian's logrotate (scripts/test installs it)")


@pytest.mark.slow
@pytest.mark.usefixtures("_needs_logrotate")
def test_forced_logrotate_of_the_app_logs_under_load_loses_no_line(site: Site, tmp_path: Path) -> None:
    site.start_loghost()
    server = site.add_host("web-a")
    user = f"{pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name}"
    rules = logrotate_rules("trackline", tmp_path / "app-logrotate.conf",
                            {"/var/log/trackline/": f"{server.log_dir}/", "su trackline trackline": f"su {user}"})
    with shipping_load(server, "rotate", rate=300) as load:
        next_rotation = 0.0  # rotated names carry the epoch second: one rotation a second at most
        for _ in range(3):
            load.wait_sent(load.sent + 300)
            wait_until(functools.partial(lambda at: time.monotonic() > at, next_rotation), "the next second")
            logrotate(rules)
            next_rotation = time.monotonic() + 1.1
        load.wait_sent(load.sent + 300)
    assert server.stop() == 0
    assert len(list(server.log_dir.glob("access.log-*"))) == 3
    result = wait_delivered(site, "web-a")
    assert not result.duplicates and not result.foreign, result


@pytest.mark.usefixtures("_needs_logrotate")
def test_central_tree_rotates_and_the_log_host_reopens_its_files(site: Site, tmp_path: Path) -> None:
    loghost = site.start_loghost()
    server = site.add_host("web-a")
    assert loghost.process is not None
    rules = logrotate_rules("trackline-central", tmp_path / "central-logrotate.conf",
                            {"/var/log/trackline-central/": f"{site.central_dir}/",
                             "/usr/lib/rsyslog/rsyslog-rotate": f"kill -HUP {loghost.process.pid}"})
    with shipping_load(server, "before", rate=500, limit=200) as load:
        load.wait_sent(200)
    wait_delivered(site, "web-a")
    logrotate(rules)
    with shipping_load(server, "after", rate=500, limit=200) as load:
        load.wait_sent(200)
    assert server.stop() == 0
    result = wait_delivered(site, "web-a")
    assert not result.duplicates and not result.foreign, result
    host_dir = site.central_dir / "web-a"
    (rotated,) = host_dir.glob("access.log-*")
    ids = {line["tracking_id"] for line in map(json.loads, (host_dir / "access.log").read_bytes().splitlines())}
    assert {f"after-{n:05d}" for n in range(200)} <= ids and not any(i.startswith("before-") for i in ids if i)
    assert b'"before-00199"' in rotated.read_bytes()


def test_trace_on_the_log_host_follows_one_id_across_hosts_in_time_order(site: Site) -> None:
    site.start_loghost()
    b = site.add_host("web-b")
    a = site.add_host("web-a", {"DOWNSTREAM_URL": b.url})
    assert relay(a, {"X-Tracking-ID": "across-hosts-1"}) == "across-hosts-1"
    for hostname, server in site.servers.items():
        assert server.stop() == 0
        wait_delivered(site, hostname)
    result = trace(site, "across-hosts-1")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["@timestamp"] for r in printed] == sorted(r["@timestamp"] for r in printed)  # one zone: text order
    # A's call and relay lines, B's health check and access line, A's access line: each from its own host's files.
    assert sorted((r["hostname"], r["logger"], r.get("request_path", r["message"])) for r in printed) == [
        ("web-a", "gunicorn.access", "/api/relay"), ("web-a", "trackline.jobs", "downstream answered"),
        ("web-a", "trackline.propagation", f"GET {b.url}/api/health"),
        ("web-b", "gunicorn.access", "/api/health"), ("web-b", "trackline.api", "Health check")]
    pretty = trace(site, "across-hosts-1", "--pretty").stdout.splitlines()
    assert len(pretty) == 5 and all(("web-a" in row) != ("web-b" in row) for row in pretty), pretty


def through(edge: Edge, method: str, path: str, tracking_id: str) -> Any:
    """``method path`` sent to the edge with ``tracking_id``: the envelope's data (the answer carries the ID)."""
    response = request(f"http://127.0.0.1:{edge.port}{path}", method, {"X-Tracking-ID": tracking_id}, timeout=30)
    assert 200 <= response.status < 300, response.body  # urllib's error statuses
    assert response.headers["X-Tracking-ID"] == tracking_id
    return response.json()["data"]


@pytest.fixture
def _needs_celery() -> None:
    require_nginx()
    if REDIS is None:
        unavailable("needs Debian's redis-server as Celery's broker (scripts/test installs it)")
    if importlib.util.find_spec("celery") is None:
        unavailable("needs the celery extra (scripts/test installs it)")


@pytest.mark.usefixtures("_needs_celery")
def test_trace_on_the_log_host_follows_one_id_from_the_edge_across_two_hosts_and_a_task(site: Site) -> None:
    site.start_loghost()
    redis = Redis(site.root / "redis")
    site.daemons.append(redis)
    redis.start()
    b = site.add_host("web-b")
    a = site.add_host("web-a", {"DOWNSTREAM_URL": b.url, "JOBS_BROKER_URL": redis.url})
    edge = site.add_edge("edge", a)
    worker = site.add_worker("worker", redis.url)
    tracking_id = "edge-to-task-1"
    assert through(edge, "GET", "/api/relay", tracking_id)["downstream_status"] == 200  # A calls B
    job = through(edge, "POST", "/api/jobs", tracking_id)["job_id"]  # A queues a task
    wait_until(lambda: done(worker, job), "the task done", timeout=60)
    for writer in (edge, a, b, worker):
        assert writer.stop() == 0
    for hostname in site.shipped:
        wait_delivered(site, hostname)
    result = trace(site, tracking_id)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    printed = result.stdout.splitlines(keepends=True)
    # Every line each host wrote with the ID, from its own host's central files, with its hostname, once.
    assert sorted(line.encode() for line in printed) == sorted(
        line for hostname in site.shipped for line in central_lines_of(site, hostname, tracking_id))
    records = [json.loads(line) for line in printed]
    stamps = [datetime.fromisoformat(r["@timestamp"]) for r in records]
    assert stamps == sorted(stamps)
    # The edge's line of each request, A's, B's and the task's, each from its own host (a task's run time cut off).
    story = [(r["hostname"], r["logger"], r.get("request_path", r["message"].replace(job, "JOB").partition(" in ")[0]))
             for r in records]
    assert sorted(story) == [
        ("edge", "nginx.access", "/api/jobs"), ("edge", "nginx.access", "/api/relay"),
        ("web-a", "gunicorn.access", "/api/jobs"), ("web-a", "gunicorn.access", "/api/relay"),
        ("web-a", "trackline.jobs", "downstream answered"), ("web-a", "trackline.jobs", "job queued"),
        ("web-a", "trackline.propagation", f"GET {b.url}/api/health"),
        ("web-b", "gunicorn.access", "/api/health"), ("web-b", "trackline.api", "Health check"),
        ("worker", "celery.app.trace", "Task trackline.jobs.run[JOB] succeeded"),
        ("worker", "trackline.jobs", "job done"), ("worker", "trackline.jobs", "job started")]
    pretty = trace(site, tracking_id, "--pretty").stdout.splitlines()
    assert [row.split()[1] for row in pretty] == [r["hostname"] for r in records]  # the hostname column


def refusals(loghost: Rsyslogd) -> int:
    """How many sessions the log host refused in the TLS handshake or for their certificate, as it logs them."""
    text = loghost.output.read_text(errors="replace")
    return len(re.findall(r"authentication error|TLS handshake failed|frame too long", text))


@pytest.mark.slow
def test_only_the_sender_with_the_certificate_of_its_name_gets_a_line_in(site: Site) -> None:
    loghost = site.start_loghost("web-a")
    other_ca = Ca(site.root / "other-ca", "someone else's CA")
    web_a = site.certificate("web-a")
    assert web_a is not None
    intruders: dict[str, Tls | None] = {
        "no-certificate": Tls(web_a.ca, "", ""),  # TLS, trusting the log host, with nothing of its own to show
        "another-name": site.ca.issue("web-b"),  # a certificate of the same CA for another host
        "another-ca": other_ca.issue("web-a"),  # the right name, signed by another CA
        "plain": None,  # no TLS at all
    }
    for name, tls in intruders.items():
        log_dir = site.root / name / "logs"
        log_dir.mkdir(parents=True)
        (log_dir / "access.log").write_text(json.dumps({"message": f"INTRUDER-{name}"}) + "\n")
        snippet = site.ship_snippet("web-a", [log_dir / "access.log"], tls)
        if tls is not None and not tls.cert:  # no certificate: the parameters for it left out
            snippet = re.sub(r' tls\.myCert="" tls\.myPrivKey=""', "", snippet)
        sender = Rsyslogd(site.root / f"{name}-rsyslog", "web-a", {SHIP: SENDER_LIMIT + snippet})
        site.daemons.append(sender)
        sender.start()
    # A hand-made session without TLS, too: nothing is acknowledged.
    with pytest.raises(AssertionError, match="refused the session"):
        Relp(loghost.ports["web-a"])
    # Each was refused (the log host says so, again as the senders retry) ...
    wait_until(lambda: refusals(loghost) >= 2 * len(intruders), "the log host to refuse every intruder twice")
    # ... and the real web-a, started after them, gets its lines in: none of theirs is there.
    server = site.add_host("web-a")
    assert server.get("/api/names", {"X-Tracking-ID": "the-real-web-a"}).status == 200
    assert server.stop() == 0
    wait_delivered(site, "web-a")
    central = b"".join(path.read_bytes() for path in site.central_dir.rglob("*") if path.is_file())
    assert b"the-real-web-a" in central and b"INTRUDER" not in central
    assert [path.name for path in site.central_dir.iterdir()] == ["web-a"]


def test_a_sender_cannot_choose_its_host_its_file_or_a_cut_line(site: Site) -> None:
    """An authenticated sender (web-a's certificate) writing frames by hand: the host is the one the log host
    authenticated, the file one trackline ships, and a frame over the limit is refused whole."""
    loghost = site.start_loghost("web-a", "web-b")
    relp = Relp(loghost.ports["web-a"], site.certificate("web-a"))
    forged = {"@timestamp": "2026-12-07T12:00:00+00:00", "message": "GET /admin/delete-all 200",
              "hostname": "web-b", "tracking_id": "forged-1"}
    assert relp.syslog("web-b", "access.log", json.dumps(forged).encode()).startswith(b"200 OK")
    for name in ("evil.log", "..", "access.log.1", "app", "access.log/../x"):
        assert relp.syslog("web-a", name, b'{"message": "where does this go?"}').startswith(b"200 OK")
    huge = json.dumps({"message": "x" * 2 * 1024 * 1024, "tracking_id": "huge-1"}).encode()
    assert relp.syslog("web-a", "app.log", huge) == b""  # refused: the log host closes the session
    relp.close()
    relp = Relp(loghost.ports["web-a"], site.certificate("web-a"))
    assert relp.syslog("web-a", "app.log", b'{"message": "after the huge one", "tracking_id": "after-1"}') \
        .startswith(b"200 OK")
    relp.close()
    wait_until(lambda: len(dropped(site, "web-a")) == 5, "the five unknown file names counted")
    # Under web-a, as web-a: the app's own hostname kept under another name, no duplicated key.
    (access,) = (site.central_dir / "web-a" / "access.log").read_bytes().splitlines()
    assert access == b'{"hostname":"web-a",' + json.dumps(forged).encode()[1:].replace(
        b'"hostname":', b'"app_hostname":')
    assert json.loads(access)["hostname"] == "web-a" and json.loads(access)["app_hostname"] == "web-b"
    assert sorted(path.name for path in site.central_dir.iterdir()) == ["web-a"]
    assert sorted(path.name for path in (site.central_dir / "web-a").iterdir()) == [
        "access.log", "app.log", "dropped.log"]
    assert {r["file"] for r in dropped(site, "web-a")} == {"evil.log", "..", "access.log.1", "app", "access.log/../x"}
    # The 2 MiB frame: not a byte of it stored, and the log host counted it in its own log.
    app = (site.central_dir / "web-a" / "app.log").read_bytes()
    assert b"huge-1" not in app and [json.loads(line)["tracking_id"] for line in app.splitlines()] == ["after-1"]
    assert "frame too long" in loghost.output.read_text()
    # trackline trace shows the forged line as web-a's, the host that sent it.
    printed = trace(site, "forged-1")
    assert [json.loads(line)["hostname"] for line in printed.stdout.splitlines()] == ["web-a"]


def test_the_longest_lines_trackline_writes_arrive_whole(site: Site) -> None:
    """A line trackline's formatter capped (a 1.5 MB message, cut to fit the default max_line_bytes, 1 MiB with
    its newline) and a hand-made JSON line of exactly 1 MiB with its newline reach the log host whole: the
    sender's limit has room for the syslog header too, and its frames fit the log host's."""
    loghost = site.start_loghost("web-a")
    log_dir = site.root / "web-a" / "logs"
    site.add_sender("web-a", log_dir)
    record = logging.makeLogRecord({"name": "trackline.api", "levelno": logging.INFO, "levelname": "INFO",
                                    "msg": "x" * 1_500_000, "tracking_id": "capped-1"})
    capped = (JsonFormatter().format(record) + "\n").encode()
    assert DEFAULT_MAX_LINE_BYTES - 1024 < len(capped) <= DEFAULT_MAX_LINE_BYTES
    head = b'{"tracking_id":"exact-1","message":"'
    exact = head + b"y" * (DEFAULT_MAX_LINE_BYTES - len(head) - 3) + b'"}\n'
    lines = [capped, exact, b'{"message":"after","tracking_id":"after-3"}\n']
    assert len(exact) == DEFAULT_MAX_LINE_BYTES and all(json.loads(line) for line in lines)
    (log_dir / "app.log").write_bytes(b"".join(lines))
    central = site.central_dir / "web-a" / "app.log"
    wait_until(lambda: central.exists() and b"after-3" in central.read_bytes(), "the line after the long ones")
    assert central.read_bytes().splitlines(keepends=True) == [as_central("web-a", line) for line in lines]
    stored = json.loads(central.read_bytes().splitlines()[0])  # the app's cut, not the shipper's
    assert (stored["hostname"], stored["tracking_id"], stored["truncated"]) == ("web-a", "capped-1", True)
    printed = trace(site, "capped-1")
    assert printed.returncode == 0 and printed.stdout.encode() == as_central("web-a", capped), printed.stderr
    assert "frame too long" not in loghost.output.read_text()


@pytest.mark.parametrize("nginx_log", [False, True], ids=["shipper", "edge"])
def test_a_line_over_the_limit_arrives_marked_and_the_sender_goes_on(site: Site, nginx_log: bool) -> None:
    """A 1.5 MB line (from an app that caps none): the sender keeps its first part (its frame at the sender's
    limit: trackline-ship.service's, or on an edge trackline-limits.conf's), the frame fits the log host's limit,
    the log host marks the line as cut, and the lines after it arrive."""
    loghost = site.start_loghost("web-a")
    log_dir = site.root / "web-a" / "logs"
    site.add_sender("web-a", log_dir, site.root / "web-a" / "nginx" / "access.log" if nginx_log else None)
    huge = json.dumps({"message": "x" * 1_500_000, "tracking_id": "huge-2"})
    with (log_dir / "app.log").open("w") as app:
        app.write(huge + "\n" + json.dumps({"message": "after", "tracking_id": "after-2"}) + "\n")
    central = site.central_dir / "web-a" / "app.log"
    wait_until(lambda: central.exists() and b"after-2" in central.read_bytes(), "the line after the big one")
    cut, after = (json.loads(line) for line in central.read_bytes().splitlines())  # each line valid JSON
    assert (cut["hostname"], cut["truncated"], after["tracking_id"]) == ("web-a", True, "after-2")
    assert huge.startswith(cut["message"]) and cut["bytes"] == len(cut["message"]) > DEFAULT_MAX_LINE_BYTES
    assert "frame too long" not in loghost.output.read_text()
