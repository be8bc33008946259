"""``trace``'s two line finders (a plain file read into one reused buffer; decompressed blocks searched where
they lie) give exactly the lines a naive split gives, wherever the blocks cut the lines and the ID."""

from __future__ import annotations

import gzip
import io
import random
from pathlib import Path

import pytest

from trackline.reader import trace as reader

NEEDLE = b"req-1"


def naive(data: bytes) -> list[tuple[int, bytes]]:
    """``(offset, line)`` of each line holding ``NEEDLE``, newline kept, a last line without one too."""
    found, offset = [], 0
    lines = [line + b"\n" for line in data.split(b"\n")]
    lines[-1] = lines[-1][:-1]  # after the last newline: a line without one, or nothing
    for line in filter(None, lines):
        if NEEDLE in line:
            found.append((offset, line))
        offset += len(line)
    return found


def sample(rng: random.Random) -> bytes:
    rows = []
    for _ in range(rng.randrange(0, 60)):
        size = rng.choice([0, 1, 5, 30, 200, 2500])
        row = bytes(rng.choice(b"abc req-:") for _ in range(size))
        if rng.random() < 0.4:  # the ID somewhere in the line, perhaps twice
            for _ in range(rng.choice([1, 1, 2])):
                cut = rng.randrange(len(row) + 1)
                row = row[:cut] + NEEDLE + row[cut:]
        rows.append(row)
    data = b"\n".join(rows)
    return data + (b"\n" if rng.random() < 0.5 else b"")  # sometimes a last line without newline


@pytest.mark.parametrize("seed", range(40))
def test_plain_lines_are_the_naive_lines(seed: int) -> None:
    rng = random.Random(seed)
    data = sample(rng)
    buffer = bytearray(rng.choice([1, 2, 7, 64, 1000, 1 << 16]))
    assert list(reader._plain_lines(NEEDLE, io.BytesIO(data), buffer)) == naive(data)


@pytest.mark.parametrize("seed", range(40))
def test_lines_across_blocks_are_the_naive_lines(seed: int) -> None:
    rng = random.Random(seed)
    data = sample(rng)
    cuts = sorted(rng.sample(range(len(data) + 1), min(len(data) + 1, rng.randrange(0, 30))))
    blocks = [data[start:end] for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    assert list(reader._lines_containing(NEEDLE, [block for block in blocks if block])) == naive(data)


@pytest.mark.parametrize("block", [1 << 20, 1000, 3])
def test_gzip_members_inflate_whole(monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    monkeypatch.setattr(reader, "BLOCK", block)
    monkeypatch.setattr(reader, "GZ_INPUT", max(1, block // 2))
    rng = random.Random(block)
    first, second = sample(rng) + b"\n", sample(rng)
    stream = io.BytesIO(gzip.compress(first) + gzip.compress(second) + b"\0" * 5)
    assert b"".join(reader._inflated(stream)) == first + second


@pytest.mark.parametrize("readers", [1, 2, 4])
def test_every_file_is_read_once_and_a_readers_failure_is_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 readers: int) -> None:
    """Files go to the readers biggest first; the results come back in order all the same; an error in any reader
    (not a file problem, which is reported as unreadable) reaches the caller."""
    monkeypatch.setattr(reader, "READERS", readers)
    line = '{"@timestamp": "2026-01-17T16:44:00.000+08:00", "level": "INFO", "tracking_id": "req-1", "n": %d}\n'
    for number, name in enumerate(["app.log", "app.log.1", "app.log.2.gz", "access.log", "error.log"]):
        text = (line % number) * (number + 1) * 50  # sizes differ: the order of reading is not the file order
        (tmp_path / name).write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    bases = [tmp_path / name for name in ("app.log", "access.log", "error.log")]
    search = reader.find("req-1", bases)
    files = [path.name for _, path in reader.log_files(bases)]
    assert files == ["app.log", "app.log.1", "app.log.2.gz", "access.log", "error.log"]
    # one timestamp: in the order of the files' paths (access.log, app.log, ...), then of the offsets
    assert [m.record["n"] for m in search.matches] == [n for n in (3, 0, 1, 2, 4) for _ in range((n + 1) * 50)]
    assert [m.offset for m in search.matches[:3]] == [0, len(line % 3), 2 * len(line % 3)]

    scan = reader._scan

    def failing(needle: bytes, request_id: str, path: Path, since: object, buffer: bytearray) -> object:
        if path.name == "access.log":
            raise RuntimeError("a bug")
        return scan(needle, request_id, path, since, buffer)

    monkeypatch.setattr(reader, "_scan", failing)
    with pytest.raises(RuntimeError, match="a bug"):
        reader.find("req-1", bases)
