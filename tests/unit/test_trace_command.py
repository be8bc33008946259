"""`trackline trace ID`: one request's lines from current, rotated and gzipped files, merged in time order."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from support.paths import REPO, TRACKLINE

ID = "req-1"
#: Two zones, so that merging must compare instants, not timestamp strings.
PLUS8 = timezone(timedelta(hours=8))
BASE = datetime(2026, 1, 17, 16, 44, 0, tzinfo=PLUS8)


def line(moment: datetime, tracking_id: str | None, message: str, **fields: Any) -> str:
    """One log line as trackline writes it."""
    return json.dumps({"@timestamp": moment.isoformat(timespec="milliseconds"), "level": "INFO",
                       "logger": "trackline.api", "tracking_id": tracking_id, "message": message, "pid": 7,
                       **fields})


def at(seconds: float, zone: timezone = PLUS8) -> datetime:
    return (BASE + timedelta(seconds=seconds)).astimezone(zone)


def write(path: Path, rows: list[str]) -> None:
    text = "".join(f"{row}\n" for row in rows).encode()
    path.write_bytes(gzip.compress(text) if path.suffix == ".gz" else text)


def trace(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``trackline trace ARGS`` with the environment's log directories unset unless ``env`` sets them."""
    base = {k: v for k, v in os.environ.items() if k not in ("TRACKLINE_LOG_DIR", "LOGS_DIRECTORY")}
    return subprocess.run([str(TRACKLINE), "trace", *args], capture_output=True, text=True, timeout=30,
                          env={**base, **(env or {})}, cwd=cwd)


#: ``ID``'s lines as (file, line), in the order the output must have.
EXPECTED = [
    ("app.log-20260101-1.gz", line(at(0), ID, "oldest, rotated and gzipped")),
    ("access.log.1", line(at(1), ID, "GET /api/relay 200", logger="gunicorn.access", request_method="GET",
                          request_path="/api/relay", status_code=200, request_time=0.012)),
    ("app.log", line(at(2, UTC), ID, "logged in UTC")),
    ("error.log", line(at(3), ID, "worker error", level="ERROR", exc_info="Traceback (most recent call last)\n"
                                                                           "ValueError: boom")),
    ("app.log", line(at(5), ID, "newest")),
]
#: Lines of other IDs: one a superstring of ``ID``, one mentioning ``ID`` only in its message, one outside requests.
OTHERS = [
    ("app.log-20260101-1.gz", line(at(0.5), "req-10", "another request")),
    ("access.log.1", line(at(-1), "req-2", "GET /api/health 200")),
    ("app.log", line(at(1.5), "req-2", f"retrying what {ID} started")),
    ("app.log", line(at(4), None, "no request")),
    ("error.log", line(at(2.5), "req-10", "another error")),
    ("access.log", line(at(3.5), "req-2", "GET /api/names 200")),
]
#: Broken lines for the middle of app.log; only the one that contains the ID could have matched.
BROKEN = [f'{{"@timestamp": "2026-01-17T16:44:02.500+08:00", "tracking_id": "{ID}", "mess', "not json at all"]


def build(directory: Path, entries: list[tuple[str, str]], broken: list[str] = ()) -> Path:
    """Write ``entries`` into their files under ``directory``, ``broken`` in the middle of app.log."""
    directory.mkdir()
    files: dict[str, list[str]] = {}
    for name, row in entries:
        files.setdefault(name, []).append(row)
    if broken:
        files["app.log"][1:1] = broken
    for name, rows in files.items():
        write(directory / name, rows)
    return directory


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    """A hand-written log dir: current, plain rotated and gzipped files, lines out of file order."""
    return build(tmp_path / "logs", EXPECTED + OTHERS, BROKEN)


def test_prints_exactly_the_ids_lines_in_time_order(log_dir):
    result = trace(ID, "--log-dir", str(log_dir))
    assert result.stdout.splitlines() == [row for _, row in EXPECTED]
    assert result.stderr.splitlines() == ["trackline: skipped 1 malformed line(s)"]
    assert result.returncode == 0


def test_pretty_prints_one_compact_line_per_record(log_dir):
    result = trace(ID, "--log-dir", str(log_dir), "--pretty", env={"TZ": "CST-8"})  # shown in local time
    assert result.returncode == 0
    rows = result.stdout.splitlines()
    assert len(rows) == len(EXPECTED) + 2  # the traceback's two lines, indented under its record
    assert not any(row.lstrip().startswith("{") for row in rows)
    assert rows[0].startswith("16:44:00.000 ")
    assert "oldest, rotated and gzipped" in rows[0] and "app.log-20260101-1.gz" in rows[0]
    assert "GET /api/relay -> 200" in rows[1] and "access.log.1" in rows[1]
    assert "logged in UTC" in rows[2]
    assert "ERROR" in rows[3] and "worker error" in rows[3]
    assert rows[4:6] == ["    Traceback (most recent call last)", "    ValueError: boom"]
    assert "newest" in rows[6]


def test_without_log_dir_reads_the_files_of_the_shipped_logging_yaml(log_dir):
    result = trace(ID, "--conf-dir", str(REPO / "conf"), env={"TRACKLINE_LOG_DIR": str(log_dir)})
    assert result.returncode == 0
    assert result.stdout.splitlines() == [row for _, row in EXPECTED]


def test_without_log_dir_follows_the_handlers_filenames(tmp_path):
    """An operator who renames or moves the files in logging.yaml finds them with plain ``trace ID``."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "logging.yaml").write_text(
        "version: 1\n"
        "handlers:\n"
        "  requests: {class: logging.FileHandler, filename: '${SPOOL}/web/requests.log'}\n"
        "  service: {class: logging.FileHandler, filename: '${SPOOL}/svc/service.log'}\n"
        "  again: {class: logging.FileHandler, filename: '${SPOOL}/svc/service.log'}\n"
        "  console: {class: logging.StreamHandler}\n"
        "root: {handlers: [requests, service, again, console]}\n")
    build(tmp_path / "web", [("requests.log", EXPECTED[1][1]), ("access.log", EXPECTED[3][1])])
    build(tmp_path / "svc", [("service.log.1", EXPECTED[0][1]), ("service.log", EXPECTED[2][1]),
                              ("app.log", EXPECTED[4][1]), ("service.logger", EXPECTED[4][1])])
    result = trace(ID, env={"TRACKLINE_CONF_DIR": str(tmp_path / "conf"), "SPOOL": str(tmp_path)})
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [row for _, row in EXPECTED[:3]]  # not access.log, app.log, service.logger


@pytest.mark.parametrize(("logging_yaml", "problem"), [
    (None, "config directory {conf} does not exist"),
    ("version: 1\nhandlers: {console: {class: logging.StreamHandler}}\n",
     "{conf}/logging.yaml: no handler writes a file ('filename')"),
    ("version: 1\nhandlers: {app: {filename: '${NOT_SET_ANYWHERE}/app.log'}}\n",
     "{conf}/logging.yaml: handlers.app.filename: ${{NOT_SET_ANYWHERE}} is not set"),
], ids=["no-conf-dir", "no-file-handler", "unset-variable"])
def test_no_log_files_known_exits_2_naming_the_problem_and_log_dir(tmp_path, logging_yaml, problem):
    conf = tmp_path / "conf"
    if logging_yaml is not None:
        conf.mkdir()
        (conf / "logging.yaml").write_text(logging_yaml)
    result = trace(ID, "--conf-dir", str(conf), cwd=tmp_path)  # no ./logs to fall back on
    assert (result.returncode, result.stdout) == (2, "")
    [message] = result.stderr.splitlines()
    assert message.startswith("trackline: cannot tell where the logs are (give --log-dir DIR): "
                              + problem.format(conf=conf))


def test_unknown_id_exits_1(log_dir):
    result = trace("req-404", "--log-dir", str(log_dir))
    assert (result.returncode, result.stdout) == (1, "")


def test_since_iso_keeps_lines_from_that_instant_on(log_dir):
    since = at(2.5, UTC).isoformat()  # the same instant written in another zone
    result = trace(ID, "--log-dir", str(log_dir), "--since", since)
    assert result.returncode == 0
    assert result.stdout.splitlines() == [row for _, row in EXPECTED[3:]]


@pytest.mark.parametrize(("since", "kept"), [("10m", 2), ("1h", 3), ("1d", 4), ("30s", 1)])
def test_since_relative_counts_back_from_now(tmp_path, since, kept):
    now = datetime.now().astimezone()
    ages = [timedelta(hours=2), timedelta(minutes=30), timedelta(minutes=5), timedelta(seconds=10)]
    entries = [("app.log", line(now - age, ID, f"{age} ago")) for age in ages]
    build(tmp_path / "logs", [*entries, ("app.log", line(now - timedelta(days=2), ID, "two days ago"))])
    result = trace(ID, "--log-dir", str(tmp_path / "logs"), "--since", since)
    assert result.returncode == 0
    assert result.stdout.splitlines() == [row for _, row in entries[-kept:]]


def test_unparsable_since_exits_2_with_one_line(log_dir):
    result = trace(ID, "--log-dir", str(log_dir), "--since", "yesterday")
    assert (result.returncode, result.stdout) == (2, "")
    assert len(result.stderr.splitlines()) == 1 and "--since" in result.stderr


def test_missing_log_dir_exits_2_with_one_line(log_dir, tmp_path):
    missing = tmp_path / "nowhere"
    result = trace(ID, "--log-dir", str(log_dir), "--log-dir", str(missing))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [f"trackline: no such log directory: {missing}"]


def _gzipped_filler() -> bytes:
    """A gzip stream of 300 other-ID lines, then one ``ID`` line at its end."""
    rows = [line(at(n / 100), "req-2", f"filler {n}") for n in range(300)] + [line(at(9), ID, "lost at the end")]
    return gzip.compress("".join(f"{row}\n" for row in rows).encode(), mtime=0)


def _truncated_gzip(path: Path) -> None:
    """A gzip file cut in half, as a copy interrupted mid-way would leave it."""
    data = _gzipped_filler()
    path.write_bytes(data[: len(data) // 2])


def _corrupt_gzip(path: Path) -> None:
    """A gzip file whose deflate data is damaged just after the header (zlib: "invalid code lengths set")."""
    data = bytearray(_gzipped_filler())
    data[12:20] = b"\xff" * 8
    path.write_bytes(bytes(data))


def _not_gzip(path: Path) -> None:
    path.write_text(line(at(9), ID, "plain text in a .gz name") + "\n", encoding="utf-8")


@pytest.mark.parametrize("spoil", [
    pytest.param(_truncated_gzip, id="truncated"),
    pytest.param(_not_gzip, id="not-gzip"),
    pytest.param(_corrupt_gzip, id="corrupt"),
])
def test_unreadable_gzip_is_reported_not_a_traceback(log_dir, spoil):
    broken = log_dir / "app.log.2.gz"
    spoil(broken)
    result = trace(ID, "--log-dir", str(log_dir))
    assert result.returncode == 0
    assert result.stdout.splitlines() == [row for _, row in EXPECTED]
    assert "Traceback" not in result.stderr
    problems = result.stderr.splitlines()
    assert problems[-1] == "trackline: skipped 1 malformed line(s)"
    assert len(problems) == 2 and problems[0].startswith(f"trackline: skipped unreadable file {broken}: ")


def test_half_written_last_line_is_unfinished_not_malformed(log_dir):
    """A reader can see part of a worker's write: the file then ends mid-line, with no newline yet."""
    with (log_dir / "access.log").open("a", encoding="utf-8") as stream:
        stream.write(line(at(6), ID, "GET /api/names 200")[:120])
    result = trace(ID, "--log-dir", str(log_dir))
    assert result.returncode == 0
    assert result.stdout.splitlines() == [row for _, row in EXPECTED]
    assert result.stderr.splitlines() == [
        "trackline: skipped 1 malformed line(s)",
        "trackline: skipped 1 unfinished last line(s): a write in progress (run again to see it) or a file cut short",
    ]


def test_complete_last_line_without_newline_is_a_match(log_dir):
    with (log_dir / "access.log").open("a", encoding="utf-8") as stream:
        stream.write(line(at(6), ID, "GET /api/names 200"))
    result = trace(ID, "--log-dir", str(log_dir))
    assert result.stdout.splitlines()[-1] == line(at(6), ID, "GET /api/names 200")
    assert result.stderr.splitlines() == ["trackline: skipped 1 malformed line(s)"]


@pytest.mark.parametrize("where", ["TRACKLINE_LOG_DIR", "LOGS_DIRECTORY", "./logs"])
def test_broken_logging_yaml_falls_back_to_the_default_log_dir_with_a_warning(log_dir, tmp_path, where):
    """When logging.yaml is broken the operator needs trace most: read where the shipped logging.yaml would."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "logging.yaml").write_text("version: 1\nhandlers: {app: {filename: x\n")
    env = {} if where == "./logs" else {where: str(log_dir)}
    result = trace(ID, "--conf-dir", str(conf), env=env, cwd=tmp_path)  # tmp_path/logs is log_dir
    assert result.returncode == 0
    assert result.stdout.splitlines() == [row for _, row in EXPECTED]
    warning, *rest = result.stderr.splitlines()
    shown = "logs" if where == "./logs" else str(log_dir)
    assert warning.startswith(f"trackline: warning: {conf / 'logging.yaml'}: invalid YAML at line 2")
    assert warning.endswith(f"; reading {shown} instead")
    assert rest == ["trackline: skipped 1 malformed line(s)"]


def test_finds_a_request_by_its_trace_id(tmp_path):
    """Across services the tracking ID may differ (or be missing) where the W3C trace-id is the same."""
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    rows = [line(at(0), "edge-1", "at the edge", trace_id=trace_id, span_id="00f067aa0ba902b7"),
            line(at(1), "svc-b-7", "downstream", trace_id=trace_id, span_id="b7ad6b7169203331"),
            line(at(2), "other", "another trace", trace_id="0af7651916cd43dd8448eb211c80319c"),
            line(at(3), trace_id, "a tracking ID that happens to be the trace-id")]
    build(tmp_path / "logs", [("app.log", row) for row in rows])
    result = trace(trace_id, "--log-dir", str(tmp_path / "logs"))
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [rows[0], rows[1], rows[3]]


def central(tracking_id: str, seconds: float, hostname: str, message: str, **fields: Any) -> str:
    """A line as the log host stores it: the app's line with ``hostname`` spliced in."""
    return line(at(seconds), tracking_id, message, hostname=hostname, **fields)


def test_log_host_tree_is_one_story_with_duplicates_printed_once(tmp_path):
    """``--log-dir /var/log/trackline-central``: every host's files, merged in time order, each line once."""
    edge = central(ID, 0, "edge-1", "GET /api/relay 200", logger="nginx.access", request_method="GET",
                   request_path="/api/relay", status_code=200, request_time=0.02, upstream_status="200")
    relay = central(ID, 1, "web-a", "calling downstream")
    served = central(ID, 2, "web-b", "Health check")
    task = central(ID, 3, "worker-1", "task done", logger="trackline.worker", task_id="t-1")
    access_a = central(ID, 4, "web-a", "GET /api/relay 200", logger="gunicorn.access", status_code=200)
    root = tmp_path / "central"
    root.mkdir()
    build(root / "edge-1", [("trackline-access.log", edge), ("trackline-access.log", edge)])  # resent at once
    build(root / "web-a", [("app.log.1", relay), ("app.log", relay),  # resent after the rotation
                           ("access.log-20260117.gz", access_a)])
    build(root / "web-b", [("app.log", relay), ("app.log", served)])  # the same bytes in another host's files
    build(root / "worker-1", [("worker.log", task), ("worker.log", central("req-2", 3, "worker-1", "other"))])
    result = trace(ID, "--log-dir", str(root))
    assert result.returncode == 0
    assert result.stdout.splitlines() == [edge, relay, relay, served, task, access_a]
    assert result.stderr.splitlines() == ["trackline: skipped 2 duplicate line(s) delivered twice to the log host"]


def test_pretty_shows_hostname_logger_and_extra_fields_in_columns(tmp_path):
    root = tmp_path / "central"
    root.mkdir()
    rows = [central(ID, 0, "edge-1", "GET / 200", logger="nginx.access", request_method="GET", request_path="/",
                    status_code=200, request_time=0.003, upstream_addr="127.0.0.1:8000"),
            central(ID, 1, "web-a.example.internal", "tracking ID replaced", logger="trackline.tracking",
                    rejected_tracking_id="bad id", trace_id="4bf92f3577b34da6a3ce929d0e0e4736"),
            central(ID, 2, "web-b", "Health check", referer=None)]
    build(root / "edge-1", [("trackline-access.log-20260117-1768652077.gz", rows[0])])
    build(root / "web-a.example.internal", [("app.log", rows[1])])
    build(root / "web-b", [("app.log.1", rows[2])])
    result = trace(ID, "--log-dir", str(root), "--pretty", env={"TZ": "CST-8"})
    assert (result.returncode, result.stderr) == (0, "")
    shown = result.stdout.splitlines()
    assert len(shown) == 3
    columns = [row.split()[:5] for row in shown]
    assert [c[1] for c in columns] == ["edge-1", "web-a.example.internal", "web-b"]
    assert [c[4] for c in columns] == ["nginx.access", "trackline.tracking", "trackline.api"]
    assert [c[2] for c in columns] == ["trackline-access.log-20260117-1768652077.gz", "app.log", "app.log.1"]
    # the columns line up whatever the length of a host or file name
    assert len({row.index(" INFO ") for row in shown}) == 1
    messages = ["GET / ->", "tracking ID", "Health check"]
    assert len({row.index(text) for row, text in zip(shown, messages, strict=True)}) == 1
    assert "GET / -> 200 (0.003s)" in shown[0] and "upstream_addr=127.0.0.1:8000" in shown[0]
    assert "rejected_tracking_id=bad id" in shown[1] and "trace_id=4bf92f3577b34da6a3ce929d0e0e4736" in shown[1]
    assert "referer" not in shown[2]  # empty fields are left out


def test_single_host_pretty_has_no_hostname_column(log_dir):
    result = trace(ID, "--log-dir", str(log_dir), "--pretty", env={"TZ": "CST-8"})
    first = result.stdout.splitlines()[0].split()
    assert first[:4] == ["16:44:00.000", "app.log-20260101-1.gz", "INFO", "trackline.api"]


def test_unreadable_log_dir_exits_2_saying_so(log_dir):
    """An operator without the service's group: "permission denied", not "no lines"."""
    log_dir.chmod(0o000)
    # root reads anything: drop the capabilities that let it, as an operator without them is
    no_dac = ["setpriv", "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search",
              "--"] if os.geteuid() == 0 else []
    try:
        result = subprocess.run([*no_dac, str(TRACKLINE), "trace", ID, "--log-dir", str(log_dir)],
                                capture_output=True, text=True, timeout=30)
    finally:
        log_dir.chmod(0o755)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [f"trackline: cannot read log directory {log_dir}: permission denied (run it"
                                          " as root or as the service's user)"]


def test_pretty_shows_the_date_when_the_lines_span_days(tmp_path):
    rows = [line(at(0), ID, "before midnight"), line(at(8 * 3600), ID, "the next morning")]  # 16:44, then 00:44
    build(tmp_path / "logs", [("app.log", row) for row in rows])
    result = trace(ID, "--log-dir", str(tmp_path / "logs"), "--pretty", env={"TZ": "CST-8"})
    assert [row.split()[:2] for row in result.stdout.splitlines()] == [["2026-01-17", "16:44:00.000"],
                                                                     ["2026-01-18", "00:44:00.000"]]


def test_the_log_hosts_hostname_wins_over_an_apps_escaped_spelling(tmp_path):
    """The log host writes its sender's name first and renames an app's plain ``hostname``; an app that spells the
    key with JSON escapes gets a second ``hostname``, which json.loads would let win: trace keeps the first."""
    forged = ('{"hostname":"web-1","@timestamp":"2026-01-17T08:44:37.123+00:00","level":"INFO","logger":"x",'
              f'"tracking_id":"{ID}","message":"hi","host\\u006eame":"db-1"}}')
    (tmp_path / "central").mkdir()
    build(tmp_path / "central/web-1", [("app.log", forged)])
    result = trace(ID, "--log-dir", str(tmp_path / "central"), "--pretty")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.split()[1] == "web-1" and "db-1" not in result.stdout


def test_a_log_file_that_is_a_symbolic_link_is_not_read(tmp_path):
    """The service's user links a rotation's name to a file only root may read: trace run as root shows nothing
    of it, and says which file it skipped and why."""
    secret = tmp_path / "secret.json"
    secret.write_text(line(at(1), ID, "ROOT-ONLY SECRET") + "\n")
    logs = build(tmp_path / "logs", [("app.log", line(at(0), ID, "genuine"))])
    (logs / "app.log.1").symlink_to(secret)
    result = trace(ID, "--log-dir", str(logs))
    assert result.returncode == 0 and "genuine" in result.stdout and "SECRET" not in result.stdout
    assert result.stderr == (f"trackline: skipped unreadable file {logs / 'app.log.1'}: a symbolic link, which"
                             " trackline does not follow\n")


def test_pretty_access_line_without_request_time_says_no_time(tmp_path):
    logs = build(tmp_path / "logs", [("access.log", line(at(0), ID, "GET / 499", logger="gunicorn.access",
                                                         request_method="GET", request_path="/", status_code=499))])
    result = trace(ID, "--log-dir", str(logs), "--pretty")
    assert result.returncode == 0 and result.stdout.rstrip().endswith("GET / -> 499")
