"""A real ``trackline compact`` killed (SIGKILL) at random moments, again and again, then run to its end: no line
lost or doubled against the sources' counts, and ``trace`` finds each line once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from support.logtree import EPOCH, access_line, app_line, rotation, sql_json, trackline, write_lines
from support.paths import TRACKLINE

pytestmark = pytest.mark.slow

HOSTS, DAYS, LINES = ("web-1", "web-2", "web-3"), 4, 3000


def build(central: Path) -> dict[str, int]:
    """Daily .gz rotations of access.log and app.log; every line its own tracking ID. Lines per source."""
    counts = {}
    for host in HOSTS:
        for day in range(DAYS):
            start = datetime.fromtimestamp(EPOCH, UTC) + timedelta(days=day - DAYS)
            for name, line in (("access.log", access_line), ("app.log", app_line)):
                source = rotation(central / host / name, (day - DAYS + 1) * 86400)
                records = [line(start + timedelta(seconds=n * 86400 / LINES), f"{host}-{name}-{day}-{n}", host)
                           for n in range(LINES)]
                counts[str(source)] = write_lines(source, records)
    return counts


def test_killed_at_random_points_then_finished_loses_and_doubles_nothing(tmp_path: Path) -> None:
    central = tmp_path / "central"
    counts = build(central)
    rng = random.Random(int(os.environ.get("TRACKLINE_TEST_SEED", "26")))
    command = [str(TRACKLINE), "compact", "--log-dir", str(central), "--keep-json-days", "0"]
    started = time.monotonic()
    subprocess.run([*command[:3], str(tmp_path / "empty")], capture_output=True)  # the import time, about
    startup = time.monotonic() - started
    build(tmp_path / "probe")  # the same work, timed whole: the kills spread over the job's life on any machine
    started = time.monotonic()
    subprocess.run([*command[:3], str(tmp_path / "probe"), *command[4:]], capture_output=True, check=True)
    whole = max(time.monotonic() - started - startup, 0.1)
    kills = 0
    for _ in range(12):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(startup + rng.uniform(0, whole / 6))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)  # our own child, by its PID
            kills += 1
        process.wait()
        # between runs, readers see every line once
        assert sql_json(central, "SELECT count(*) AS n, count(DISTINCT tracking_id) AS ids FROM lines") == [
            {"n": sum(counts.values()), "ids": sum(counts.values())}]
    assert kills >= 6
    done = trackline(*command[1:])
    assert done.returncode == 0, done.stderr
    assert not list(central.rglob("*.gz")) and not (central / "parquet/.staging").exists()
    rows = sql_json(central, "SELECT file, count(*) AS n, count(DISTINCT tracking_id) AS ids FROM lines GROUP BY 1")
    assert {row["file"]: row["n"] for row in rows} == counts
    assert all(row["n"] == row["ids"] for row in rows)
    for host in HOSTS:
        found = trackline("trace", f"{host}-access.log-2-7", "--log-dir", str(central))
        assert len(found.stdout.splitlines()) == 1, found.stdout + found.stderr
