"""The edge's JSON log under real logrotate with Debian's nginx rules: nginx reopens it on USR1, no line lost.

Debian's nginx package rotates /var/log/nginx/*.log (trackline-access.log included) with
/etc/logrotate.d/nginx, whose postrotate is `invoke-rc.d nginx rotate`: USR1 to the pid in nginx's pid file.
A second rule for the same file would make logrotate fail ("duplicate log entry"), so the edge ships none.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from support.edge import Edge, require_nginx
from support.load import Load
from support.logs import read_rotated_lines
from support.requirements import require_commands
from support.waiting import wait_until

DEBIAN_RULES = Path("/etc/logrotate.d/nginx")
REQUESTS = 900
RATE = 300  # requests/s at most, so the load outlasts the rotations
ROTATIONS = 3


def rules_for(edge: Edge, dest: Path) -> Path:
    """Debian's rules pointed at the edge's log dir, created as this user, reopening with USR1 to this nginx."""
    if not DEBIAN_RULES.exists():
        pytest.skip(f"{DEBIAN_RULES} is missing (nginx is not Debian's package)")
    rules = DEBIAN_RULES.read_text()
    for expected in ("/var/log/nginx/*.log", "create 0640 www-data adm", "invoke-rc.d nginx rotate"):
        assert expected in rules, f"{DEBIAN_RULES} no longer says {expected!r}"
    user, group = pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name
    # `invoke-rc.d nginx rotate` runs `start-stop-daemon --stop --signal USR1 --pidfile /run/nginx.pid`.
    rules = (rules.replace("/var/log/nginx/", f"{edge.access_log.parent}/")
             .replace("create 0640 www-data adm", f"create 0640 {user} {group}")
             .replace("invoke-rc.d nginx rotate", f'kill -USR1 "$(cat {edge.pid_file})"'))
    dest.write_text(rules)
    return dest


def test_forced_rotations_with_debian_rules_lose_no_edge_line(tmp_path: Path) -> None:
    require_nginx()
    require_commands({"logrotate": "logrotate"})
    refusing = socket.socket()  # bound, never listening: connections to it are refused, its port stays ours
    refusing.bind(("127.0.0.1", 0))
    edge = Edge(tmp_path / "edge", [f"127.0.0.1:{refusing.getsockname()[1]}"]).start()  # every answer is a 502
    rules = rules_for(edge, tmp_path / "logrotate.conf")
    ids = [f"rotate-{n:04d}" for n in range(REQUESTS)]
    load = Load(edge.port, ids, clients=1, rate=RATE, expect=502).start()  # one keep-alive client

    def sent_at_least(count: int) -> Callable[[], bool]:
        return lambda: len(load.answers) >= count

    try:
        for rotation in range(1, ROTATIONS + 1):
            wait_until(sent_at_least(rotation * REQUESTS // (ROTATIONS + 1)), f"load before rotation {rotation}")
            done = subprocess.run(["logrotate", "--force", "--state", str(tmp_path / "state"), str(rules)],
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0 and not done.stderr, done.stderr
        load.join(120)
        assert not load.errors, load.errors[:5]
        logs = edge.access_log.parent
        wait_until(lambda: Counter(r["tracking_id"] for p in logs.glob("trackline-access.log*")
                                   for r in read_rotated_lines(p)).keys() >= set(ids), "every line in the files")
    finally:
        assert edge.stop() == 0
        refusing.close()
    files = sorted(p.name for p in logs.glob("trackline-access.log*"))
    assert files == ["trackline-access.log", "trackline-access.log.1", "trackline-access.log.2.gz",
                     "trackline-access.log.3.gz"]
    seen = Counter(r["tracking_id"] for p in logs.glob("trackline-access.log*") for r in read_rotated_lines(p))
    assert seen == Counter(ids)  # every ID exactly once, none lost or doubled
    for name in files:  # each file got lines: nginx reopened the new file after every rotation
        assert read_rotated_lines(logs / name), name
