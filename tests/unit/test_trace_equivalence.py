"""The block-searching ``trace`` finds the same lines, in the same order, with the same counts of malformed and
unfinished lines, as the line-by-line reader it replaced (kept below as the reference), over a generated tree."""

from __future__ import annotations

import gzip
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from trackline.reader import trace as reader

IDS = ["req-1", "req-10", "req-2", "0b5e6f1c-7c4e-4a43-9a5e-2f3c1d9e8a77", None]
START = datetime(2026, 1, 17, 8, 0, tzinfo=timezone(timedelta(hours=8)))


def reference_find(tracking_id: str, bases: list[Path]) -> tuple[list[tuple[str, str]], int, int]:
    """The reader before the rewrite: every line decoded and split, then parsed when it holds the ID text.

    Returns ``(file, line)`` in output order, the malformed and the unfinished count.
    """
    found, malformed, unfinished = [], 0, 0
    for _, path in reader.log_files(bases):
        if path.suffix == ".gz":
            opened = gzip.open(path, "rt", encoding="utf-8", errors="replace")  # noqa: SIM115 - entered below
        else:
            opened = path.open(encoding="utf-8", errors="replace")
        with opened as stream:
            for number, line in enumerate(stream, 1):
                if tracking_id not in line:
                    continue
                try:
                    record = json.loads(line)
                    moment = datetime.fromisoformat(record["@timestamp"])
                    if moment.tzinfo is None:
                        moment = moment.astimezone()
                except (ValueError, KeyError, TypeError):
                    if line.endswith("\n"):
                        malformed += 1
                    else:
                        unfinished += 1
                    continue
                if record.get("tracking_id") == tracking_id:
                    found.append((moment, str(path), number, line.rstrip("\n")))
    found.sort()
    return [(source, line) for _, source, _, line in found], malformed, unfinished


def contract_line(rng: random.Random, moment: datetime) -> str:
    tracking_id = rng.choice(IDS)
    message = rng.choice(["Health check", "GET /api/names 200", f"retrying what {rng.choice(IDS[:4])} started",
                          "ünïcödé ✓", "x" * rng.randrange(1, 3000)])  # some lines longer than the test's block
    record = {"@timestamp": moment.isoformat(timespec="milliseconds"), "level": "INFO", "logger": "trackline.api",
              "tracking_id": tracking_id, "message": message, "pid": rng.randrange(100, 110),
              "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}
    return json.dumps(record, ensure_ascii=rng.random() < 0.5)


def broken_line(rng: random.Random) -> str:
    return rng.choice(['{"@timestamp": "2026-01-17T08:00:00.000+08:00", "tracking_id": "req-1", "mess',
                       "req-1 is not json", '{"tracking_id": "req-1", "@timestamp": "yesterday"}',
                       '["req-1"]', '{"tracking_id": "req-1"}'])


def generated_tree(root: Path, seed: int) -> list[Path]:
    """app/access/error.log with plain and gzipped rotations: shuffled times, broken and unfinished lines,
    byte-identical repeats, invalid UTF-8."""
    rng = random.Random(seed)
    root.mkdir()
    names = ["app.log", "app.log.1", "app.log.2.gz", "app.log-20260116.gz", "access.log", "access.log.1",
             "access.log-20260115-1768400000.gz", "error.log", "error.log.1.gz"]
    for name in names:
        rows = []
        for _ in range(rng.randrange(50, 400)):
            moment = START + timedelta(milliseconds=rng.randrange(0, 600_000))
            row = broken_line(rng) if rng.random() < 0.03 else contract_line(rng, moment)
            rows.append(row)
            if rng.random() < 0.02:
                rows.append(row)  # a line logged twice in the same millisecond: printed twice, as before
        data = "".join(f"{row}\n" for row in rows).encode()
        data = data.replace(b"\xc3\xbc", b"\xff", 1)  # one invalid UTF-8 byte
        if not name.endswith(".gz") and rng.random() < 0.7:
            data += contract_line(rng, START).replace('"req-', '"req-1", "was": "req-', 1)[:200].encode()
        (root / name).write_bytes(gzip.compress(data, mtime=0) if name.endswith(".gz") else data)
    return [root / name for name in reader.LOG_NAMES]


@pytest.mark.parametrize("block", [reader.BLOCK, 4096, 1000])
@pytest.mark.parametrize("seed", range(3))
def test_same_lines_order_and_counts_as_the_line_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        seed: int, block: int) -> None:
    monkeypatch.setattr(reader, "BLOCK", block)  # small blocks: lines and IDs across block boundaries
    bases = generated_tree(tmp_path / "logs", seed)
    seen = [0, 0, 0]
    for tracking_id in IDS[:4]:
        expected, malformed, unfinished = reference_find(tracking_id, bases)
        search = reader.find(tracking_id, bases)
        assert [(m.source, m.line) for m in search.matches] == expected
        assert (search.malformed, search.unfinished, search.unreadable) == (malformed, unfinished, [])
        seen = [seen[0] + len(expected), seen[1] + malformed, seen[2] + unfinished]
    assert all(seen), seen  # the tree has matches, malformed and unfinished lines


def test_concatenated_gzip_members_are_read_whole(tmp_path: Path) -> None:
    """``cat app.log.2.gz app.log.1.gz > old.gz`` is a valid gzip file of two members: read both."""
    rng = random.Random(7)
    rows = [contract_line(rng, START + timedelta(seconds=n)).replace('"tracking_id": null', '"tracking_id": "x"')
            for n in range(200)]
    first, second = ("".join(f"{row}\n" for row in part).encode() for part in (rows[:100], rows[100:]))
    (tmp_path / "app.log.1.gz").write_bytes(gzip.compress(first) + gzip.compress(second))
    (tmp_path / "app.log").write_bytes(first + second)
    for tracking_id in IDS[:4]:
        search = reader.find(tracking_id, [tmp_path / "app.log"])
        expected = [row for row in rows if json.loads(row)["tracking_id"] == tracking_id]
        assert expected and search.unreadable == []
        assert [m.line for m in search.matches] == [row for row in expected for _ in range(2)]  # app.log, then .gz
        assert [Path(m.source).name for m in search.matches] == ["app.log", "app.log.1.gz"] * len(expected)
