"""Real logrotate, forced several times while trackline is under load: no access line lost, doubled or broken."""

from __future__ import annotations

import grp
import gzip
import http.client
import json
import os
import pwd
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from support.logs import assert_contract
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


class Load:
    """CLIENTS threads sending REQUESTS GETs between them, each with its own X-Tracking-ID, at most RATE/s."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.ids = [f"rotate-{n:05d}" for n in range(REQUESTS)]
        self.done = 0
        self.errors: list[str] = []
        self._next = iter(enumerate(self.ids))
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(CLIENTS)]

    def start(self) -> Load:
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self.threads), f"load not done in {timeout}s ({self.done} sent)"

    def _client(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            while True:
                with self._lock:
                    index, tracking_id = next(self._next, (0, None))
                if tracking_id is None:
                    return
                time.sleep(max(0.0, self.started + index / RATE - time.monotonic()))
                connection.request("GET", "/api/names", headers={"X-Tracking-ID": tracking_id})
                response = connection.getresponse()
                response.read()
                if response.status != 200 or response.getheader("X-Tracking-ID") != tracking_id:
                    self.errors.append(f"{tracking_id}: {response.status} {response.getheader('X-Tracking-ID')}")
                with self._lock:
                    self.done += 1
        except Exception as exc:  # reported by the test, which must not pass with a failed client
            self.errors.append(f"client failed: {exc!r}")
        finally:
            connection.close()


def read_lines(path: Path) -> list[dict[str, object]]:
    """Every line of a (possibly gzip-compressed) log file parsed as JSON; fails naming a line that is not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as file:
        lines = file.read().splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            pytest.fail(f"{path.name}:{number} is not JSON ({exc}): {line[:200]!r}")
    return records


def test_forced_rotations_under_load_lose_and_break_no_line(make_server: Callable[[], Server],
                                                            tmp_path: Path) -> None:
    require_commands({"logrotate": "logrotate"})
    server = make_server().start()
    rules = rules_for(server.log_dir, tmp_path / "logrotate.conf")
    load = Load(server.port).start()
    rotated_at = 0.0
    for rotation in range(1, ROTATIONS + 1):
        # Spread the rotations over the load; at least a second apart, as the names carry the epoch second.
        deadline = time.monotonic() + 120
        while load.done < rotation * REQUESTS // (ROTATIONS + 1) and not load.errors:
            assert time.monotonic() < deadline, f"load stalled at {load.done} requests"
            time.sleep(0.05)
        time.sleep(max(0.0, rotated_at + 1.1 - time.monotonic()))
        rotated_at = time.monotonic()
        assert load.done < REQUESTS, "the load ended before the rotations did"
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
        for record in read_lines(path):
            assert_contract(record)
            seen[record["tracking_id"]] += 1
    assert {tracking_id: seen[tracking_id] for tracking_id in load.ids if seen[tracking_id] != 1} == {}
    for path in server.log_dir.glob("*.log*"):  # app.log and error.log were rotated too
        for record in read_lines(path):
            assert_contract(record)
