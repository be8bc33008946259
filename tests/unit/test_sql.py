"""``trackline sql``: real DuckDB over log trees the tests write: types that never depend on the data, every
kind of file, pruning, the three outputs, one-line errors."""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from support.logtree import EPOCH, access_line, app_line, rotation, write_lines
from trackline.cli import main
from trackline.reader import sql

T0 = datetime.fromtimestamp(EPOCH, UTC) + timedelta(hours=12)


def run(capsys: pytest.CaptureFixture[str], log_dir: Path, query: str, *argv: str) -> tuple[int, str, str]:
    status = main(["sql", query, "--log-dir", str(log_dir), *argv])
    out, err = capsys.readouterr()
    return status, out, err


def rows(capsys: pytest.CaptureFixture[str], log_dir: Path, query: str, *argv: str) -> list[dict[str, object]]:
    status, out, err = run(capsys, log_dir, query, "--json", *argv)
    assert status == 0, err
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A log host's tree: web-1 with a current access.log, a plain rotation and a .gz one; web-2 with app.log."""
    central = tmp_path / "central"
    access = central / "web-1/access.log"
    write_lines(rotation(access, 3600), [access_line(T0 - timedelta(hours=11), "gz-1")])
    write_lines(rotation(access, 7200, gz=False), [access_line(T0 - timedelta(hours=10), "plain-1")])
    write_lines(access, [access_line(T0, "current-1", status_code=500, request_time=1.5),
                         access_line(T0 + timedelta(seconds=1), "current-2", order_id=7)])
    write_lines(central / "web-2/app.log", [app_line(T0, "current-1", "web-2", order_id=7)])
    return central


def test_views_have_the_declared_types_whatever_the_data(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for view in (*sql.VIEWS, "lines"):
        described = rows(capsys, tree, f"DESCRIBE {view}")
        types = {row["column_name"]: row["column_type"] for row in described}
        declared = {name: kind.replace("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE")
                    for name, kind in sql.columns(view).items()}
        assert types == declared, view
    assert sql.columns("access")["status_code"] == "INTEGER" and sql.columns("access")["request_time"] == "DOUBLE"


def test_an_id_that_is_no_uuid_compares_in_a_file_where_every_id_is_one(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's case: read_json_auto typed tracking_id as UUID when every ID in error.log was one."""
    logs = tmp_path / "logs"
    write_lines(logs / "error.log", [app_line(T0, "0b7b3c1e-1111-4222-8333-444455556666", None,
                                              logger="gunicorn.error") for _ in range(3)])
    assert rows(capsys, logs, "SELECT count(*) AS n FROM error WHERE tracking_id = 'boom-1'") == [{"n": 0}]
    assert rows(capsys, logs, "SELECT typeof(tracking_id) AS t FROM error LIMIT 1") == [{"t": "VARCHAR"}]


def test_a_value_of_another_type_is_null_in_its_column_and_kept_in_fields(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    logs = tmp_path / "logs"
    write_lines(logs / "access.log", [access_line(T0, "a", None, status_code="abc", pid="x"),
                                      access_line(T0, "b", None)])
    found = rows(capsys, logs, "SELECT tracking_id, status_code, pid, fields->>'$.status_code' AS raw FROM access"
                               " ORDER BY 1")
    assert found == [{"tracking_id": "a", "status_code": None, "pid": None, "raw": "abc"},
                     {"tracking_id": "b", "status_code": 200, "pid": 4242, "raw": "200"}]


def test_current_plain_and_gz_rotations_with_hostname_file_and_extra_fields(tree: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    found = rows(capsys, tree, "SELECT tracking_id, hostname, file, date FROM access ORDER BY \"@timestamp\"")
    assert [row["tracking_id"] for row in found] == ["gz-1", "plain-1", "current-1", "current-2"]
    assert {row["hostname"] for row in found} == {"web-1"}
    assert [Path(str(row["file"])).name for row in found] == [
        rotation(Path("access.log"), 3600).name, rotation(Path("access.log"), 7200, gz=False).name,
        "access.log", "access.log"]
    assert {row["date"] for row in found} == {"2026-12-07"}
    joined = rows(capsys, tree, "SELECT a.tracking_id, b.hostname AS app_host, CAST(b.fields->>'$.order_id' AS INT)"
                                " AS order_id FROM access a JOIN app b USING (tracking_id)")
    assert joined == [{"tracking_id": "current-1", "app_host": "web-2", "order_id": 7}]
    assert rows(capsys, tree, "SELECT count(*) AS n FROM lines") == [{"n": 5}]


def test_hostname_is_the_line_s_then_the_folder_s_then_this_machine_s(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    write_lines(tmp_path / "central/web-3/access.log", [access_line(T0, "x", None)])
    write_lines(tmp_path / "own/access.log", [access_line(T0, "y", None)])
    assert rows(capsys, tmp_path / "central", "SELECT hostname FROM access") == [{"hostname": "web-3"}]
    assert rows(capsys, tmp_path / "own", "SELECT hostname FROM access") == [{"hostname": sql.machine_hostname()}]


def test_since_prunes_rotations_by_name_before_reading_and_until_filters(tree: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A rotation whose name says it was rotated long before --since is not opened: here it is not even gzip."""
    old = rotation(tree / "web-1/access.log", -86400 * 3)
    old.write_bytes(b"not gzip at all")
    status, _, err = run(capsys, tree, "SELECT count(*) FROM access")
    assert status == 1 and err.startswith("trackline: sql: ") and err.count("\n") == 1
    since = (T0 - timedelta(hours=10, minutes=30)).isoformat()
    assert rows(capsys, tree, "SELECT tracking_id FROM access ORDER BY 1", "--since", since) == [
        {"tracking_id": "current-1"}, {"tracking_id": "current-2"}, {"tracking_id": "plain-1"}]
    until = (T0 + timedelta(milliseconds=500)).isoformat()
    assert rows(capsys, tree, "SELECT tracking_id FROM access ORDER BY 1", "--since", since, "--until", until) == [
        {"tracking_id": "current-1"}, {"tracking_id": "plain-1"}]


def test_table_csv_and_json_lines(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    query = "SELECT tracking_id, status_code, request_time FROM access WHERE tracking_id LIKE 'current%' ORDER BY 1"
    status, out, _ = run(capsys, tree, query)
    assert status == 0
    assert out.splitlines() == [
        "tracking_id  status_code  request_time",
        "-----------  -----------  ------------",
        "current-1            500           1.5",
        "current-2            200         0.012",
        "(2 rows)",
    ]
    status, out, _ = run(capsys, tree, query, "--csv")
    assert list(csv.reader(io.StringIO(out))) == [["tracking_id", "status_code", "request_time"],
                                                   ["current-1", "500", "1.5"], ["current-2", "200", "0.012"]]
    [line] = rows(capsys, tree, "SELECT \"@timestamp\", fields FROM access WHERE tracking_id = 'current-2'")
    assert datetime.fromisoformat(str(line["@timestamp"])) == T0 + timedelta(seconds=1)
    assert isinstance(line["fields"], dict) and line["fields"]["order_id"] == 7


def test_a_query_error_is_one_line(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for query in ("SELECT nope FROM access", "SELEC 1", "SELECT * FROM nowhere"):
        status, out, err = run(capsys, tree, query)
        assert (status, out) == (1, "") and err.startswith("trackline: sql: ") and err.count("\n") == 1, err


def test_malformed_lines_are_skipped_and_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logs = tmp_path / "logs"
    write_lines(logs / "app.log", [app_line(T0, "a", None), b"not json", b'{"cut": "in', app_line(T0, "b", None)])
    status, out, err = run(capsys, logs, "SELECT count(*) AS n FROM app", "--json")
    assert (status, out, err) == (0, '{"n": 2}\n', "trackline: skipped 2 malformed line(s) (not JSON)\n")


def test_other_presets_give_timestamp_tracking_and_trace_id_and_fields(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    logs = tmp_path / "logs"
    write_lines(logs / "access.log", [
        {"time": "2026-12-07T13:26:20.332+00:00", "severity": "INFO", "tracking_id": "gcp-ok",
         "logging.googleapis.com/trace": "projects/p/traces/4bf92f3577b34da6a3ce929d0e0e4736",
         "httpRequest": {"status": 200}},
        {"@timestamp": "2026-12-07T13:26:18.780+00:00", "log.level": "INFO", "tracking_id": "ecs-ok",
         "trace": {"id": "4bf92f3577b34da6a3ce929d0e0e4737"}, "http": {"response": {"status_code": 201}}},
    ])
    found = rows(capsys, logs, "SELECT tracking_id, trace_id, epoch(\"@timestamp\") AS t, coalesce("
                               "fields->>'$.httpRequest.status', fields->>'$.http.response.status_code') AS s"
                               " FROM access ORDER BY 1")
    assert found == [
        {"tracking_id": "ecs-ok", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4737", "t": 1796649978.78, "s": "201"},
        {"tracking_id": "gcp-ok", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "t": 1796649980.332, "s": "200"},
    ]


def test_without_duckdb_it_says_how_to_install_it(tree: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "duckdb", None)  # import duckdb raises ImportError
    status, out, err = run(capsys, tree, "SELECT 1")
    assert (status, out, err) == (2, "", "trackline: trackline sql needs DuckDB: pip install 'trackline[sql]'\n")


def test_missing_log_dir_and_bad_times_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, tmp_path / "nope", "SELECT 1")[0] == 2
    status, _, err = run(capsys, tmp_path, "SELECT 1", "--until", "yesterday")
    assert status == 2 and "--until 'yesterday'" in err


def test_nothing_else_imports_duckdb(tree: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckDB is an optional extra: only reader/sql.py imports it (others for their type hints only), and trace
    works without it where there is no Parquet history."""
    source = Path(sql.__file__).parents[1]
    importers = sorted(str(path.relative_to(source)) for path in source.rglob("*.py")
                       if "import duckdb" in path.read_text().replace("if TYPE_CHECKING:\n    import duckdb", ""))
    assert importers == ["reader/sql.py"]
    monkeypatch.setitem(sys.modules, "duckdb", None)
    assert main(["trace", "current-1", "--log-dir", str(tree)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_the_log_hosts_hostname_wins_over_an_apps_escaped_spelling(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    line = json.dumps(access_line(T0, "x", "web-1"))  # the log host's name first, then the app's escaped one
    write_lines(tmp_path / "central/web-1/access.log", [(line[:-1] + ', "host\\u006eame": "db-1"}').encode()])
    assert rows(capsys, tmp_path / "central", "SELECT hostname FROM access") == [{"hostname": "web-1"}]


def test_a_log_file_that_is_a_symbolic_link_is_not_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "secret.json"
    write_lines(secret, [access_line(T0, "root-only", None)])
    write_lines(tmp_path / "logs/access.log", [access_line(T0, "genuine", None)])
    (tmp_path / "logs/access.log.1").symlink_to(secret)
    status, out, err = run(capsys, tmp_path / "logs", "SELECT tracking_id FROM access", "--json")
    assert status == 0 and [json.loads(row) for row in out.splitlines()] == [{"tracking_id": "genuine"}]
    assert err == (f"trackline: skipped unreadable file {tmp_path / 'logs/access.log.1'}: a symbolic link, which"
                   " trackline does not follow\n")
