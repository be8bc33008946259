"""``trackline compact``: a log host's rotations into typed zstd Parquet, Hive style, idempotent, stopped at every
step and run again with no line lost or doubled, retention; ``trace`` and ``sql`` over the mixed tree."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from support.logtree import EPOCH, access_line, app_line, rotation, write_lines
from trackline.cli import main
from trackline.reader import compact, history, sql
from trackline.reader.trace import directory_bases, find

T0 = datetime.fromtimestamp(EPOCH, UTC)
NOW = T0 + timedelta(days=2)


class Stop(Exception):
    """A run stopped at a step, as a kill would stop it (nothing after it runs: no cleanup)."""


def build(central: Path) -> dict[str, int]:
    """Two hosts; rotations across midnight UTC, plain and gzipped, one still being compressed; current files.
    Returns the lines of each file by name relative to ``central``."""
    lines: dict[str, int] = {}

    def put(path: Path, records: list[dict[str, object] | bytes]) -> None:
        lines[str(path.relative_to(central))] = write_lines(path, records)

    for host in ("web-1", "web-2"):
        access, app = central / host / "access.log", central / host / "app.log"
        put(rotation(access, -3600), [access_line(T0 - timedelta(hours=2, seconds=n), f"{host}-a{n}", host)
                                      for n in range(50)])
        # 23:30 to 00:30 UTC: one source, two dates
        put(rotation(access, 1800), [access_line(T0 + timedelta(minutes=n - 30), f"{host}-b{n}", host)
                                     for n in range(60)])
        put(rotation(app, 1800), [app_line(T0 + timedelta(minutes=n), f"{host}-b{n}", host) for n in range(20)])
        put(rotation(access, 7200, gz=False), [access_line(T0 + timedelta(hours=1), f"{host}-c", host)])
        put(access, [access_line(T0 + timedelta(hours=3), f"{host}-d", host)])
    twin = rotation(central / "web-1/error.log", 5000)  # logrotate compressing it right now
    put(twin, [app_line(T0, "e", "web-1")])
    put(twin.with_suffix(""), [app_line(T0, "e", "web-1")])
    return lines


def counts(central: Path) -> dict[str, int]:
    """Rows per source file (relative to ``central``), as ``trackline sql`` sees the tree."""
    con = sql.connect()
    try:
        sql.create_views(con, sql.gather(directory_bases(central), [central]))
        found = con.execute("SELECT file, count(*) FROM lines GROUP BY 1").fetchall()
        return {os.path.relpath(file, central): n for file, n in found}
    finally:
        con.close()


@pytest.fixture
def central(tmp_path: Path) -> Path:
    return tmp_path / "central"


def test_rotations_become_typed_zstd_parquet_partitioned_by_utc_date_and_host(central: Path) -> None:
    lines = build(central)
    before = counts(central)
    report = compact.compact(central, keep_json_days=7, now=NOW)
    assert (report.failed, report.deleted_json) == ([], [])
    assert sorted(commit.source for commit in report.compacted) == sorted(
        name for name in lines if name.endswith(".gz") and "error" not in name)
    root = central / "parquet"
    crossing = rotation(Path("access.log"), 1800).name.removesuffix(".gz")
    assert sorted(str(path.relative_to(root)) for path in root.glob("date=*/hostname=web-1/access*")) == [
        f"date=2026-12-06/hostname=web-1/{rotation(Path('access.log'), -3600).name.removesuffix('.gz')}.parquet",
        f"date=2026-12-06/hostname=web-1/{crossing}.parquet",
        f"date=2026-12-07/hostname=web-1/{crossing}.parquet",
    ]
    con = sql.connect()
    meta = con.execute(f"SELECT DISTINCT compression FROM parquet_metadata('{root}/**/*.parquet')").fetchall()
    schema = dict(con.execute(f"SELECT name, type FROM parquet_schema('{root}/date=2026-12-07/hostname=web-1/"
                              f"{crossing}.parquet')").fetchall())
    assert meta == [("ZSTD",)]
    assert (schema["status_code"], schema["request_time"], schema["tracking_id"]) == ("INT32", "DOUBLE", "BYTE_ARRAY")
    assert "date" not in schema and "hostname" not in schema  # the partition is in the path only (Hive, Spark)
    assert counts(central) == before  # the same rows, now from Parquet where compacted
    assert all((central / name).exists() for name in lines)  # JSON kept for 7 days


def test_a_second_run_changes_nothing(central: Path) -> None:
    build(central)
    compact.compact(central, now=NOW)
    tree = {path: path.read_bytes() for path in central.rglob("*") if path.is_file()}
    report = compact.compact(central, now=NOW)
    assert (report.compacted, report.failed) == ([], [])
    assert {path: path.read_bytes() for path in central.rglob("*") if path.is_file()} == tree


#: (step, which time it is reached): every step of the first source, and later sources' too.
STOPS = [(step, 1) for step in ("counted", "staged", "verified", "published", "committed", "deleted-json")] + [
    ("published", 2), ("staged", 4), ("committed", 5), ("deleted-json", 3)]


@pytest.mark.parametrize(("step", "occurrence"), STOPS, ids=str)
def test_stopped_at_any_step_a_rerun_loses_and_doubles_nothing(central: Path, step: str, occurrence: int) -> None:
    lines = build(central)
    expected = counts(central)
    seen = []

    def checkpoint(name: str) -> None:
        seen.append(name)
        if name == step and seen.count(name) == occurrence:
            raise Stop(step)
        if len(seen) <= 6:
            assert counts(central) == expected  # readers see every line once at every step

    with pytest.raises(Stop):
        compact.compact(central, keep_json_days=0, now=NOW, checkpoint=checkpoint)
    assert counts(central) == expected
    report = compact.compact(central, keep_json_days=0, now=NOW)
    assert report.failed == []
    assert counts(central) == expected
    compacted = [name for name in lines if name.endswith(".gz") and "error" not in name]
    assert not any((central / name).exists() for name in compacted)  # each deleted once in Parquet
    for host in ("web-1", "web-2"):
        search = find(f"{host}-b5", directory_bases(central))
        assert [Path(match.source).name for match in search.matches] == [
            rotation(Path("access.log"), 1800).name, rotation(Path("app.log"), 1800).name]
        assert search.duplicates == 0


def test_trace_over_a_mixed_tree_finds_each_line_once(central: Path) -> None:
    build(central)
    compact.compact(central, keep_json_days=7, now=NOW)  # Parquet and the same sources still as JSON
    bases = directory_bases(central)
    for request_id, files in (("web-2-a3", 1), ("web-1-b40", 1), ("web-1-c", 1), ("web-1-d", 1)):
        search = find(request_id, bases)
        assert len(search.matches) == files and search.duplicates == 0, request_id
    assert len(history.split(bases, []).parquet) == 8  # 4 per host: the rotation across midnight makes two
    since = T0 + timedelta(minutes=5)
    assert [m.record["tracking_id"] for m in find("web-1-b4", bases, since).matches] == []
    assert [m.record["tracking_id"] for m in find("web-1-b40", bases, since).matches] == ["web-1-b40"]


def test_a_line_as_shipped_twice_is_printed_once_across_json_and_parquet(central: Path) -> None:
    line = access_line(T0, "twice", "web-1")
    write_lines(rotation(central / "web-1/access.log", 100), [line])
    write_lines(central / "web-1/access.log", [line])
    compact.compact(central, now=NOW)
    search = find("twice", directory_bases(central))
    assert (len(search.matches), search.duplicates) == (1, 1)


def test_malformed_lines_are_kept_in_the_parquet_and_counted_by_sql(central: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    source = rotation(central / "web-1/app.log", 100)
    write_lines(source, [app_line(T0, "ok", "web-1"), b"not json \xe9", b'{"cut": "in'])
    report = compact.compact(central, keep_json_days=0, now=NOW)
    assert [commit.rows for commit in report.compacted] == [3] and not source.exists()
    con = sql.connect()
    kept = con.execute(f"SELECT malformed FROM read_parquet('{central}/parquet/**/*.parquet') "
                       "WHERE malformed IS NOT NULL ORDER BY 1").fetchall()
    assert sorted(kept) == [(b"not json \xe9",), (b'{"cut": "in',)]
    assert main(["sql", "SELECT count(*) FROM app", "--log-dir", str(central), "--csv"]) == 0
    assert capsys.readouterr() == ("count_star()\n1\n", "trackline: skipped 2 malformed line(s) (not JSON)\n")


def test_a_damaged_gz_is_left_as_json_and_the_others_are_compacted(central: Path) -> None:
    good = rotation(central / "web-1/access.log", 100)
    write_lines(good, [access_line(T0, "ok", "web-1")])
    bad = rotation(central / "web-1/app.log", 100)
    bad.write_bytes(gzip.compress(b'{"a": 1}\n' * 1000)[:-30])
    report = compact.compact(central, keep_json_days=0, now=NOW)
    assert [commit.source for commit in report.compacted] == [str(good.relative_to(central))]
    assert len(report.failed) == 1 and bad.name in report.failed[0] and bad.exists()


def test_retention_deletes_old_json_once_committed_and_old_parquet_dates(central: Path) -> None:
    lines = build(central)
    compact.compact(central, keep_json_days=7, now=NOW)
    report = compact.compact(central, keep_json_days=2, keep_parquet_days=0, now=NOW)
    old = rotation(Path("access.log"), -3600).name
    assert sorted(path.name for path in report.deleted_json) == [old, old]  # rotated more than 2 days before NOW
    assert counts(central)[f"web-1/{old}"] == counts(central)[f"web-2/{old}"] == 50
    never = rotation(central / "web-1/error.log", 5000)  # never compacted: never deleted by compact
    report = compact.compact(central, keep_json_days=0, keep_parquet_days=1, now=NOW + timedelta(days=30))
    assert never.exists() and report.deleted_dates == [central / "parquet/date=2026-12-06",
                                                       central / "parquet/date=2026-12-07"]
    assert not list((central / "parquet/_compacted").rglob("*.json"))  # neither source nor Parquet left
    assert {Path(name).name for name in counts(central)} == {
        "access.log", rotation(Path("access.log"), 7200, gz=False).name, never.name, never.with_suffix("").name}
    assert sum(counts(central).values()) == sum(n for name, n in lines.items() if not name.endswith(".gz")) + 1


def test_retention_keeps_a_source_whose_parquet_is_not_what_the_marker_says(central: Path) -> None:
    source = rotation(central / "web-1/access.log", 100)
    write_lines(source, [access_line(T0, f"x{n}", "web-1") for n in range(3)])
    [commit] = compact.compact(central, keep_json_days=7, now=NOW).compacted
    marker = history.marker_path(central, commit.source)
    marker.write_text(marker.read_text().replace('"rows": 3', '"rows": 4'))
    report = compact.compact(central, keep_json_days=0, now=NOW)
    assert source.exists() and report.kept == [f"{commit.source}: its Parquet files hold 3 rows, its marker says 4"]


def test_a_second_run_at_the_same_time_is_refused(central: Path) -> None:
    write_lines(rotation(central / "web-1/access.log", 100), [access_line(T0, "x", "web-1")])
    with compact._locked(central / "parquet"), pytest.raises(compact.CompactionError, match="another trackline"):
        compact.compact(central, now=NOW)


def test_the_command_reports_and_checks_its_options(central: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_lines(rotation(central / "web-1/access.log", 100), [access_line(T0, "x", "web-1")])
    assert main(["compact", "--log-dir", str(central), "--keep-json-days", "3", "--keep-parquet-days", "2"]) == 2
    assert "at least --keep-json-days" in capsys.readouterr().err
    assert main(["compact", "--log-dir", str(central / "nope")]) == 2
    capsys.readouterr()
    assert main(["compact", "--log-dir", str(central), "--keep-json-days", "100000"]) == 0
    out = capsys.readouterr().out
    assert out == f"trackline: compacted 1 file(s), 1 line(s), into {central}/parquet\n"
    marker = json.loads(next((central / "parquet/_compacted").rglob("*.json")).read_text())
    assert marker["rows"] == 1 and marker["base"] == "web-1/access.log"
    assert os.stat(central / "parquet").st_mode & 0o777  # created


def test_the_history_is_no_more_readable_than_the_logs_whatever_the_umask(central: Path) -> None:
    """``trackline compact`` run by hand in a shell with umask 022: folders 0750, files 0640."""
    build(central)
    argv = ["compact", "--log-dir", str(central)]
    script = f"import os, sys; os.umask(0o022); from trackline.cli import main; sys.exit(main({argv!r}))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    made = [central / "parquet", *(central / "parquet").rglob("*")]
    assert len(made) > 3
    assert {path.stat().st_mode & 0o777 for path in made if path.is_dir()} == {0o750}
    assert {path.stat().st_mode & 0o777 for path in made if path.is_file()} == {0o640}


def test_compact_in_process_leaves_the_callers_umask_alone(central: Path) -> None:
    before = os.umask(0o022)
    try:
        assert main(["compact", "--log-dir", str(central / "nope")]) == 2
        assert main(["compact", "--log-dir", str(central.parent)]) == 0
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(before)
