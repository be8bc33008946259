"""``trace``'s two line finders (a plain file read into one reused buffer; decompressed blocks searched where
they lie) give exactly the lines a naive split gives, wherever the blocks cut the lines and the ID."""

from __future__ import annotations

import gzip
import io
import random

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
