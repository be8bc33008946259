"""``trackline sql`` on a log host's central tree as the shipping tests make it: two real ``trackline serve``
hosts (web-a relaying to web-b) whose rsyslogd ship their files over RELP to a log host's rsyslogd running the
shipped snippets; then the tree rotated, gzipped and compacted, and the same answers again."""

from __future__ import annotations

import glob
import gzip
import json
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from installer.options import Address
from installer.rsyslog import loghost_listeners, relp_tls, render_text, ship_inputs
from support.conf import edit_yaml
from support.logs import read_json_lines
from support.logtree import sql_json, trackline
from support.paths import REPO
from support.processes import free_port, stop_process
from support.relay import relay
from support.requirements import unavailable
from support.server import Server
from support.waiting import wait_until

pytestmark = pytest.mark.slow
FILES = ("access.log", "app.log", "error.log")


def render(snippet: str, **words: object) -> str:
    return render_text((REPO / "rsyslog" / snippet).read_text(), snippet, **words)


def rsyslogd(root: Path, hostname: str, snippets: dict[str, str]) -> subprocess.Popen[bytes]:
    """A started ``rsyslogd -n`` named ``hostname`` with ``snippets`` and its own work directory."""
    (root / "work").mkdir(parents=True)
    main = [f'global(workDirectory="{root / "work"}" localHostname="{hostname}")']
    for name, text in snippets.items():
        (root / name).write_text(text)
        main.append(f'include(file="{root / name}")')
    (root / "rsyslog.conf").write_text("\n".join(main) + "\n")
    with (root / "out").open("wb") as out:
        return subprocess.Popen(["rsyslogd", "-n", "-f", str(root / "rsyslog.conf"), "-i", str(root / "pid")],
                                stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture
def central(tmp_path: Path, make_server: Callable[..., Server]) -> Iterator[tuple[Path, dict[str, Server], str]]:
    """The central tree once every line of both hosts has reached it; the servers (stopped); the relayed ID."""
    if not shutil.which("rsyslogd") or not glob.glob("/usr/lib/*/rsyslog/imrelp.so"):
        unavailable("needs Debian's rsyslog and rsyslog-relp (scripts/test installs them)")
    ports, tree, daemons = {"web-a": free_port(), "web-b": free_port()}, tmp_path / "central", []
    limits = render("trackline-limits.conf")
    try:  # RELP without TLS (--plain): test_log_shipping.py covers TLS
        listeners = loghost_listeners("127.0.0.1", [Address("", name, port) for name, port in ports.items()], None)
        daemons.append(rsyslogd(tmp_path / "loghost", "loghost", {"limits.conf": limits, "loghost.conf": render(
            "trackline-loghost.conf", LISTEN_ADDRESS="127.0.0.1", CENTRAL_DIR=str(tree)) + listeners}))

        def listening() -> bool:
            try:
                for port in ports.values():
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_until(listening, "the log host's rsyslogd to listen", timeout=30)
        servers = {name: make_server(name=name) for name in ("web-b", "web-a")}
        for name, server in servers.items():
            server.log_dir.mkdir(parents=True)
            daemons.append(rsyslogd(tmp_path / f"{name}-rsyslog", name, {"limits.conf": limits, "ship.conf": render(
                "trackline-ship.conf", SHIP_TO_HOST="127.0.0.1", SHIP_TO_PORT=ports[name], TLS=relp_tls(None, ""))
                + ship_inputs(str(server.log_dir / file) for file in FILES)}))
        servers["web-b"].start()
        edit_yaml(servers["web-a"].conf_dir / "app.yaml",
                  lambda app: app.update(DOWNSTREAM_URL=servers["web-b"].url))
        servers["web-a"].start()
        relayed = relay(servers["web-a"], {"X-Tracking-ID": "order-42"})
        for server in servers.values():
            for number in range(20):
                server.get("/api/health", headers={"X-Tracking-ID": f"{server.root.name}-{number}"})
            assert server.get("/api/error").status == 500
        for server in servers.values():
            assert server.stop() == 0

        def delivered() -> bool:
            return all((tree / name / file).is_file() and len((tree / name / file).read_bytes().splitlines()) ==
                       len(read_json_lines(server.log_dir / file)) for name, server in servers.items()
                       for file in FILES)

        wait_until(delivered, "every line at the log host", timeout=60)
        yield tree, servers, relayed
    finally:
        for daemon in daemons:
            stop_process(daemon, 60)


def test_sql_over_the_central_tree_then_its_compacted_history(
        central: tuple[Path, dict[str, Server], str], tmp_path: Path) -> None:
    tree, servers, relayed = central
    written = {(name, file): len(read_json_lines(server.log_dir / file)) for name, server in servers.items()
               for file in FILES}
    query = "SELECT hostname, regexp_extract(file, '[a-z]+\\.log') AS f, count(*) AS n FROM lines GROUP BY ALL"

    def counted() -> dict[tuple[str, str], int]:
        return {(str(row["hostname"]), str(row["f"])): int(str(row["n"])) for row in sql_json(tree, query)}

    assert counted() == written
    hosts = "SELECT DISTINCT hostname FROM lines WHERE tracking_id = '{}' ORDER BY 1"
    assert sql_json(tree, hosts.format(relayed)) == [{"hostname": "web-a"}, {"hostname": "web-b"}]
    errors = "SELECT hostname, tracking_id FROM access WHERE status_code >= 500 ORDER BY 1"
    five_hundreds = sql_json(tree, errors)
    assert [row["hostname"] for row in five_hundreds] == ["web-a", "web-b"]
    traced = trackline("trace", relayed, "--log-dir", str(tree))
    # logrotate's rotation of the central tree (rsyslog is stopped: no reopen needed), then compact
    for path in sorted(tree.glob("*/*.log")):
        with gzip.open(path.with_name(f"{path.name}-20261207-1796601600.gz"), "wb") as rotated:
            rotated.write(path.read_bytes())
        path.unlink()
    done = trackline("compact", "--log-dir", str(tree), "--keep-json-days", "0")
    assert done.returncode == 0, done.stderr
    assert not list(tree.rglob("*.gz"))
    assert sorted(str(path.relative_to(tree / "parquet")).split("/")[1] for path in
                  (tree / "parquet").rglob("*.parquet")) == ["hostname=web-a"] * 3 + ["hostname=web-b"] * 3
    assert counted() == written
    assert sql_json(tree, hosts.format(relayed)) == [{"hostname": "web-a"}, {"hostname": "web-b"}]
    assert sql_json(tree, errors) == five_hundreds
    again = trackline("trace", relayed, "--log-dir", str(tree))
    assert [json.loads(line) for line in again.stdout.splitlines()] == [
        json.loads(line) for line in traced.stdout.splitlines()]
