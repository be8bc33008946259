"""Real logrotate, forced several times while trackline is under load: no access line lost, doubled or broken."""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from support.load import Load
from support.logs import assert_contract, read_rotated_lines
from support.paths import REPO
from support.requirements import require_commands
from support.server import Server

REQUESTS = 6000  # K: one unique tracking ID each
CLIENTS = 8  # threads, each with one keep-alive connection
ROTATIONS = 4
RATE = 800  # requests/s at most, so the load outlasts the rotations (which must be a second apart)


def rules_for(log_dir: Path, dest: Path) -> Path:
    """The shipped rules pointed at ``log_dir``, rotating as this user (the test server's user)."""
    rules = (REPO / "logrotate/trackline").read_text()
    assert "/var/log/trackline/" in rules and "su trackline trackline" in rules
    user, group = pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name
    rules = rules.replace("/var/log/trackline/", f"{log_dir}/").replace("su trackline trackline", f"su {user} {group}")
    dest.write_text(rules)
    return dest


def test_forced_rotations_under_load_lose_and_break_no_line(make_server: Callable[[], Server],
                                                            tmp_path: Path) -> None:
    require_commands({"logrotate": "logrotate"})
    server = make_server().start()
    rules = rules_for(server.log_dir, tmp_path / "logrotate.conf")
    ids = [f"rotate-{n:05d}" for n in range(REQUESTS)]
    load = Load(server.port, ids, clients=CLIENTS, rate=RATE, expect=200).start()
    rotated_at = 0.0
    for rotation in range(1, ROTATIONS + 1):
        # Spread the rotations over the load; at least a second apart, as the names carry the epoch second.
        deadline = time.monotonic() + 120
        while len(load.answers) < rotation * REQUESTS // (ROTATIONS + 1) and not load.errors:
            assert time.monotonic() < deadline, f"load stalled at {len(load.answers)} requests"
            time.sleep(0.05)
        time.sleep(max(0.0, rotated_at + 1.1 - time.monotonic()))
        rotated_at = time.monotonic()
        assert len(load.answers) < REQUESTS, "the load ended before the rotations did"
        done = subprocess.run(["logrotate", "--force", "--state", str(tmp_path / "state"), str(rules)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and not done.stderr, done.stderr
    load.join(timeout=300)
    assert not load.errors, load.errors[:5]
    assert server.stop() == 0

    access_files = sorted(server.log_dir.glob("access.log*"))
    rotated = [f.name for f in access_files if f.name != "access.log"]
    assert len(rotated) == ROTATIONS, rotated
    # compress + delaycompress: all but the newest rotated file are gzipped.
    assert sum(name.endswith(".gz") for name in rotated) == ROTATIONS - 1, rotated
    seen = Counter()
    for path in access_files:
        for record in read_rotated_lines(path):
            assert_contract(record)
            seen[record["tracking_id"]] += 1
    assert {tracking_id: seen[tracking_id] for tracking_id in ids if seen[tracking_id] != 1} == {}
    for path in server.log_dir.glob("*.log*"):  # app.log and error.log were rotated too
        for record in read_rotated_lines(path):
            assert_contract(record)
