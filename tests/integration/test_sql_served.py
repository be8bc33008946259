"""``trackline sql`` with real DuckDB over a real ``trackline serve``'s logs: typed columns whatever the IDs look
like (error.log holds nothing but generated UUIDs), every line of a hostile run loads, and after a rotation
and ``trackline compact`` the same answers come from Parquet and JSON together."""

from __future__ import annotations

import gzip
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.hostile import ANSWERED, REJECTED
from support.http import raw_request
from support.logs import read_json_lines
from support.logtree import sql_json, trackline
from support.server import new_server
from trackline.reader import sql

FILES = {"access": "access.log", "app": "app.log", "error": "error.log"}


@dataclass
class Served:
    log_dir: Path
    lines: dict[str, list[dict[str, object]]]  # view -> the file's lines, read with json
    ids: dict[str, str]  # what each request was answered with


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Served:
    """One server: named and generated IDs, a 500, and the hostile corpus (gunicorn's own 400s log UUIDs in
    error.log); its logs read once it has stopped."""
    server = new_server(tmp_path_factory.mktemp("sql-served"))
    ids = {}
    try:
        server.start()
        for name, headers in (("named", {"X-Tracking-ID": "order-42"}), ("generated", {})):
            ids[name] = server.get("/api/names", headers=headers).headers["X-Tracking-ID"]
        ids["error"] = server.get("/api/error").headers["X-Tracking-ID"]
        for case in ANSWERED + REJECTED:
            ids[case.name] = raw_request(server.port, case.request()).headers["X-Tracking-ID"]
    finally:
        assert server.stop() == 0
    return Served(server.log_dir, {view: read_json_lines(server.log_dir / name) for view, name in FILES.items()},
                 ids)


def test_every_line_of_every_file_loads_typed(served: Served) -> None:
    for view, lines in served.lines.items():
        done = trackline("sql", f"SELECT count(*) AS n, count(\"@timestamp\") AS t FROM {view}",
                         "--log-dir", str(served.log_dir), "--json")
        assert done.returncode == 0 and done.stderr == "", done.stderr  # nothing skipped
        assert json.loads(done.stdout) == {"n": len(lines), "t": len(lines)}, view
        described = sql_json(served.log_dir, f"DESCRIBE {view}")
        assert {row["column_name"]: row["column_type"] for row in described}["tracking_id"] == "VARCHAR"


def test_ids_compare_as_text_in_a_file_of_uuids(served: Served) -> None:
    """error.log: gunicorn's boot lines (null) and its 400 warnings, each with a generated UUID4."""
    assert all(line["tracking_id"] is None or len(str(line["tracking_id"])) == 36 for line in served.lines["error"])
    assert sql_json(served.log_dir, "SELECT count(*) AS n FROM error WHERE tracking_id = 'boom-1'") == [{"n": 0}]
    rejected = served.ids["id-control"]
    assert sql_json(served.log_dir, f"SELECT level FROM error WHERE tracking_id = '{rejected}'") == [
        {"level": "WARNING"}]


def test_each_request_s_access_line_has_its_typed_fields(served: Served) -> None:
    by_id = {str(line["tracking_id"]): line for line in served.lines["access"]}
    rows = sql_json(served.log_dir, "SELECT tracking_id, status_code, request_time, response_length, user_agent,"
                                    " query_string, fields FROM access")
    assert len(rows) == len(by_id)
    for row in rows:
        line = by_id[str(row["tracking_id"])]
        assert (row["status_code"], row["request_time"], row["response_length"]) == (
            line["status_code"], line["request_time"], line["response_length"])
        assert (row["user_agent"], row["query_string"], row["fields"]) == (
            line["user_agent"], line["query_string"], line)
    assert sql_json(served.log_dir, f"SELECT status_code FROM access WHERE tracking_id = '{served.ids['error']}'"
                    ) == [{"status_code": 500}]
    assert sql_json(served.log_dir, "SELECT count(*) AS n FROM app WHERE exc_info LIKE '%RuntimeError%'") == [
        {"n": 1}]


def test_after_rotation_and_compact_the_answers_are_the_same(served: Served, tmp_path: Path) -> None:
    """The logs copied as a log host's tree, each file rotated (gzipped), then compacted: the same rows."""
    query = ("SELECT tracking_id, status_code, request_path, fields FROM access UNION ALL "
             "SELECT tracking_id, NULL, NULL, fields FROM app ORDER BY tracking_id, CAST(fields AS VARCHAR)")
    before = sql_json(served.log_dir, query)
    central = tmp_path / "central"
    (central / "web-1").mkdir(parents=True)
    for name in FILES.values():
        with gzip.open(central / "web-1" / f"{name}-20261207-1796601600.gz", "wb") as rotated:
            rotated.write((served.log_dir / name).read_bytes())
    done = trackline("compact", "--log-dir", str(central), "--keep-json-days", "0")
    assert done.returncode == 0, done.stderr
    assert not list(central.rglob("*.gz")) and list(central.rglob("*.parquet"))
    assert sql_json(central, query) == before
    named = trackline("trace", "order-42", "--log-dir", str(central))
    assert named.returncode == 0
    assert [json.loads(line) for line in named.stdout.splitlines()] == [
        line for view in ("access", "app") for line in served.lines[view] if line["tracking_id"] == "order-42"]
    shutil.rmtree(central)


def test_the_views_need_no_extension_download() -> None:
    """JSON, Parquet and ICU (TIMESTAMPTZ) are built into the wheel: nothing is fetched at run time."""
    con = sql.connect()
    built_in = dict(con.execute("SELECT extension_name, install_mode FROM duckdb_extensions() WHERE loaded").fetchall())
    assert {name: built_in.get(name) for name in ("json", "parquet", "icu")} == dict.fromkeys(
        ("json", "parquet", "icu"), "STATICALLY_LINKED")
