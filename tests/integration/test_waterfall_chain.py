"""`trackline trace ID --waterfall / --json / --html` over a real chain on 127.0.0.1, started here: Debian's nginx
at the edge (when installed) -> trackline serving the demo (A), whose /api/relay?calls=3 calls a second trackline
(B) and whose POST /api/jobs queues a task for a real `trackline worker` on a real redis-server; a 500 with its
traceback; a request whose worker is killed mid-request; a line that belongs to no span.

Every process is the test's own child on a free loopback port, stopped by its PID.
"""

from __future__ import annotations

import html.parser
import json
import os
import re
import shutil
import signal
import subprocess
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from support.browser import browse
from support.celery_worker import REDIS, Redis, Worker, done, new_worker
from support.conf import edit_yaml
from support.edge import Edge
from support.http import Response, request
from support.paths import TRACKLINE
from support.requirements import require_commands, unavailable
from support.server import Server, new_server
from support.waiting import wait_until

ONE_WORKER = {"TRACKLINE_WORKERS": "1"}
CALLS = 3
#: Client-controlled text that lands in the lines (the query string): the page must show it, never run it.
HOSTILE = "</script><img%20src=x%20onerror=alert(1)>"


@dataclass
class Chain:
    a: Server
    b: Server
    worker: Worker
    edge: Edge | None
    extra: Path  # a log dir with a line of the story that has no span (an operator's script, say)
    story: str  # the tracking ID of relay + job + error
    job: str

    @property
    def log_dirs(self) -> list[Path]:
        dirs = [self.a.log_dir, self.b.log_dir, self.worker.log_dir, self.extra]
        return dirs + ([self.edge.dir / "logs"] if self.edge else [])

    def url(self, path: str) -> str:
        base = f"http://127.0.0.1:{self.edge.port}" if self.edge else self.a.url
        return base + path


def trace(tracking_id: str, dirs: list[Path], *args: str, columns: int = 250,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(TRACKLINE), "trace", tracking_id, *args]
    for directory in dirs:
        command += ["--log-dir", str(directory)]
    environment = {**os.environ, "COLUMNS": str(columns), **(env or {})}
    environment.pop("NO_COLOR", None)
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=environment)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    """The chain, with one story told through it (the same tracking ID for a relay, a job and a 500), then stopped:
    every line is on disk when the tests read it."""
    if REDIS is None:
        unavailable("needs Debian's redis-server as Celery's broker (scripts/test installs it)")
    pytest.importorskip("celery", reason="the celery extra is not installed (scripts/test installs it)")
    root = tmp_path_factory.mktemp("chain")
    started: list[Any] = []
    try:
        redis = Redis(root / "redis").start()
        started.append(redis)
        b = new_server(root / "b", ONE_WORKER)
        started.append(b)
        b.start()
        a = new_server(root / "a", ONE_WORKER)
        edit_yaml(a.conf_dir / "app.yaml", lambda app: app.update(DOWNSTREAM_URL=b.url, JOBS_BROKER_URL=redis.url))
        started.append(a)
        a.start()
        worker = new_worker(root / "worker", redis.url)
        started.append(worker)
        worker.start()
        edge = None
        if shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"):  # the edge when nginx is installed
            edge = Edge(root / "edge", [f"127.0.0.1:{a.port}"])
            started.append(edge)
            edge.start()
        extra = root / "ops"
        extra.mkdir()
        chain = Chain(a, b, worker, edge, extra, f"wf-story-{uuid.uuid4().hex[:8]}", "")
        headers = {"X-Tracking-ID": chain.story, "User-Agent": "waterfall-test </script><script>alert(2)</script>"}
        relayed = request(chain.url(f"/api/relay?calls={CALLS}&note={HOSTILE}"), headers=headers, timeout=30)
        assert relayed.status == 200, relayed.body
        queued = request(chain.url("/api/jobs"), "POST", headers, timeout=30)
        assert queued.status == 202, queued.body
        chain.job = queued.json()["data"]["job_id"]
        failed = request(chain.url("/api/error"), headers=headers, timeout=30)
        assert failed.status == 500 and failed.headers["X-Tracking-ID"] == chain.story
        wait_until(lambda: done(worker, chain.job), "the task done", timeout=60)
        (extra / "app.log").write_text(json.dumps({
            "@timestamp": datetime.now().astimezone().isoformat(timespec="milliseconds"), "level": "WARNING",
            "logger": "ops.script", "tracking_id": chain.story, "message": "replayed by hand (no trace fields)",
            "pid": os.getpid()}) + "\n")
        for process in reversed(started[1:]):
            assert process.stop() == 0
        yield chain
    finally:
        for process in reversed(started):
            process.stop()


def spans_of(document: dict[str, Any]) -> Iterator[tuple[int, dict[str, Any]]]:
    def walk(span: dict[str, Any], depth: int) -> Iterator[tuple[int, dict[str, Any]]]:
        yield depth, span
        for child in span["children"]:
            yield from walk(child, depth + 1)

    for root in document["spans"]:
        yield from walk(root, 0)


def records_of(server_dir: Path, name: str, tracking_id: str) -> list[dict[str, Any]]:
    path = server_dir / name
    records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [record for record in records if record.get("tracking_id") == tracking_id]


@pytest.fixture(scope="module")
def story(chain: Chain) -> dict[str, Any]:
    result = trace(chain.story, chain.log_dirs, "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return json.loads(result.stdout)


def test_every_span_is_under_the_right_parent(chain: Chain, story: dict[str, Any]) -> None:
    b_health = f"GET {chain.b.url}/api/health"
    relay = f"GET /api/relay?calls={CALLS}&note={HOSTILE}"
    app_tree = [
        [("request", relay), [("call", b_health), [("request", "GET /api/health")]] * CALLS],
        [("request", "POST /api/jobs"), [("task", "trackline.jobs.run")]],
        [("request", "GET /api/error")],
    ]

    def shape(span: dict[str, Any]) -> list[Any]:
        children = [item for child in span["children"] for item in shape(child)]
        return [(span["kind"], span["name"]), children] if children else [(span["kind"], span["name"])]

    got = [shape(root) for root in story["spans"]]
    if chain.edge is not None:  # each request under the edge's line
        edge_names = [("edge", relay), ("edge", "POST /api/jobs"), ("edge", "GET /api/error")]
        assert [root[0] for root in got] == edge_names
        assert [root[1] for root in got] == app_tree
    else:
        assert got == app_tree
    links = {span["name"]: span["link"] for _, span in spans_of(story)}
    assert links["trackline.jobs.run"] == "named"  # the message's span is not logged; "job queued" names the task
    # the W3C fields say the same as the tree: each B request's parent is the call that caused it
    for _, span in spans_of(story):
        for child in span["children"]:
            if child["kind"] in ("call", "request") and span["kind"] != "edge":
                assert child["parent_span_id"] == span["span_id"], (span["name"], child["name"])
    assert not any(span["open"] for _, span in spans_of(story))


def test_durations_are_the_logged_ones(chain: Chain, story: dict[str, Any]) -> None:
    """Each request's duration is its access line's request_time (the edge's too), within a millisecond; each span
    starts no earlier than its parent (give or take the timestamps' millisecond)."""
    logged = {record["span_id"]: record["request_time"] for directory in (chain.a.log_dir, chain.b.log_dir)
              for record in records_of(directory, "access.log", chain.story)}
    assert len(logged) == 3 + CALLS
    requests = [span for _, span in spans_of(story) if span["kind"] == "request"]
    assert len(requests) == len(logged)
    for span in requests:
        assert abs(span["duration_ms"] - logged[span["span_id"]] * 1000) < 1, span["name"]
    if chain.edge is not None:
        edge_times = sorted(record["request_time"] for record in chain.edge.logs()
                            if record["tracking_id"] == chain.story)
        assert sorted(root["duration_ms"] / 1000 for root in story["spans"]) == pytest.approx(edge_times, abs=1e-3)
    for _, span in spans_of(story):
        for child in span["children"]:
            assert child["start_ms"] >= span["start_ms"] - 2, (span["name"], child["name"])
    [task] = [span for _, span in spans_of(story) if span["kind"] == "task"]
    [succeeded] = [record for record in chain.worker.logs() if record.get("task_id") == chain.job
                   and " succeeded in " in record["message"]]
    assert task["status"] == "succeeded" and abs(task["duration_ms"] - succeeded["data"]["runtime"] * 1000) < 1
    assert task["fields"]["task_id"] == chain.job


def test_the_500_is_marked_with_its_traceback(story: dict[str, Any]) -> None:
    [failed] = [span for _, span in spans_of(story) if (span["kind"], span["name"]) == ("request", "GET /api/error")]
    assert failed["status"] == "500" and failed["error"]
    [raised] = [line for line in failed["lines"] if line.get("traceback")]
    assert raised["error"] and "RuntimeError: This is a test exception" in raised["traceback"]


def test_the_line_without_a_span_is_listed_apart(story: dict[str, Any]) -> None:
    assert [line["message"] for line in story["unplaced"]] == ["replayed by hand (no trace fields)"]
    assert story["counts"]["unplaced"] == 1


def test_the_terminal_waterfall_is_the_same_tree(chain: Chain, story: dict[str, Any]) -> None:
    result = trace(chain.story, chain.log_dirs, "--waterfall")
    assert result.returncode == 0 and result.stderr == ""
    text = result.stdout
    assert "\x1b[" not in text  # piped: no colour
    rows = text.splitlines()
    span_row = re.compile(r"\s(?P<start>\d+\.\d)\s+(?P<dur>≥?\d+\.\d) [ █░]+$")
    drawn = [row for row in rows if span_row.search(row)]
    expected = list(spans_of(story))
    assert len(drawn) == len(expected)
    for row, (depth, span) in zip(drawn, expected, strict=True):
        lead, rest = row[:3 * depth], row[3 * depth:]
        assert set(lead) <= set("│├└─ ") and rest.startswith(span["name"]), (row, depth, span["name"])
        shown = span_row.search(row)
        assert shown is not None and abs(float(shown["dur"]) - span["duration_ms"]) <= 0.05 + 1e-6, row
    assert "✗" in text and "→ RuntimeError: This is a test exception" in text
    assert "lines in no span (1)" in text and "replayed by hand" in text
    width = max(len(row) for row in drawn)
    assert width <= 249  # the COLUMNS it was given, less one


def test_colour_only_on_a_terminal_and_never_with_no_color(chain: Chain) -> None:
    """Under a pseudo-terminal the rows are coloured; with NO_COLOR they are not; the width is the terminal's."""
    script = shutil.which("script")
    if script is None:
        require_commands({"script": "bsdutils"})
        script = shutil.which("script") or "script"
    dirs = " ".join(f"--log-dir {directory}" for directory in chain.log_dirs)
    command = f"stty cols 120; {TRACKLINE} trace {chain.story} {dirs} --waterfall"
    coloured = subprocess.run([script, "-qec", command, "/dev/null"], capture_output=True, text=True, timeout=60,
                              env={k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS")})
    assert coloured.returncode == 0, coloured.stdout
    assert "\x1b[3" in coloured.stdout
    bare = re.sub(r"\x1b\[[0-9;]*m", "", coloured.stdout)
    assert max(len(row.rstrip("\r")) for row in bare.splitlines() if "█" in row) <= 119
    plain = subprocess.run([script, "-qec", command, "/dev/null"], capture_output=True, text=True, timeout=60,
                           env={**{k: v for k, v in os.environ.items() if k != "COLUMNS"}, "NO_COLOR": "1"})
    assert plain.returncode == 0 and "\x1b[" not in plain.stdout and "█" in plain.stdout


# -- a request whose worker is killed mid-request: its span stays open ------------------------------------------

STALL_APP = '''
import logging
import time

from trackline.demo import create_app

log = logging.getLogger("tests.stall")


def create():
    app = create_app()

    @app.get("/api/stall")
    def stall():
        log.info("stalling")
        time.sleep(60)
        return {"never": True}

    return app
'''


def test_a_request_whose_worker_was_killed_is_open_ended(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "stall.py").write_text(textwrap.dedent(STALL_APP))
    server = new_server(tmp_path / "stall", ONE_WORKER, args=["--app", "stall:create()"])
    edit_yaml(server.conf_dir / "gunicorn.yaml", lambda settings: settings.update(pythonpath=str(code)))
    try:
        server.start()
        tracking_id = f"wf-killed-{uuid.uuid4().hex[:8]}"
        answers: list[Response | BaseException] = []

        def call() -> None:
            try:
                answers.append(server.request("/api/stall", headers={"X-Tracking-ID": tracking_id}, timeout=30))
            except OSError as exc:  # the connection dies with the worker
                answers.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        [stalling] = wait_until(lambda: records_of(server.log_dir, "app.log", tracking_id), "the stalling line")
        os.kill(stalling["pid"], signal.SIGKILL)  # the worker serving it: our server's own child
        caller.join(30)
        assert answers and not isinstance(answers[0], Response)
        assert server.stop() == 0
    finally:
        server.stop()
    assert records_of(server.log_dir, "access.log", tracking_id) == []  # it never answered
    result = trace(tracking_id, [server.log_dir], "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    [(_, span)] = list(spans_of(document))
    assert span["open"] and span["end"] is None and span["duration_ms"] is None
    assert span["span_id"] == stalling["span_id"] and "killed" in span["open_reason"]
    drawn = trace(tracking_id, [server.log_dir], "--waterfall").stdout
    assert "open-ended" in drawn and "░" in drawn and "≥0.0" in drawn


# -- the HTML page in a real browser ----------------------------------------------------------------------------

class _Dom(html.parser.HTMLParser):
    """The rows, the tags and every attribute that could load something, from a dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self.tags: list[str] = []
        self.loads: list[tuple[str, str, str]] = []
        self.body: dict[str, str] = {}
        self.classes: list[str] = []
        self.buttons: list[str] = []
        self._button = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        self.tags.append(tag)
        self.classes.append(attributes.get("class", ""))
        self._button = tag == "button" and "more" in attributes.get("class", "") and "hidden" not in attributes
        if tag == "body":
            self.body = attributes
        if tag == "div" and "row" in attributes.get("class", "").split() and "data-id" in attributes:
            self.rows.append(attributes)
        for name, value in attributes.items():
            if name in ("src", "href", "srcset", "action", "poster", "data", "formaction", "background") or (
                    name == "style" and "url(" in value):
                self.loads.append((tag, name, value))


    def handle_data(self, data: str) -> None:
        if self._button and data.strip():
            self.buttons.append(data.strip())
            self._button = False


def test_the_html_page_draws_the_same_tree_and_loads_nothing(chain: Chain, story: dict[str, Any],
                                                             tmp_path: Path) -> None:
    page = tmp_path / "waterfall.html"
    result = trace(chain.story, chain.log_dirs, "--html", str(page))
    assert result.returncode == 0 and result.stdout.startswith(f"wrote {page}: ")
    text = page.read_text()
    assert "</script><img" not in text and "<script>alert" not in text  # the client's text only as escaped JSON
    netlog = tmp_path / "netlog.json"
    dumped = browse(page, tmp_path, "--dump-dom", "--virtual-time-budget=5000", f"--log-net-log={netlog}")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = _Dom()
    dom.feed(dumped.stdout)
    assert dom.body.get("data-ready") == "true"  # the script ran to its end
    expected = [(span["id"], parent, str(depth)) for depth, span, parent in _with_parents(story)]
    assert [(row["data-id"], row["data-parent"], row["data-depth"]) for row in dom.rows] == expected
    assert dom.loads == []  # nothing that fetches
    assert dom.tags.count("script") == 2 and "img" not in dom.tags and "iframe" not in dom.tags
    assert HOSTILE in dumped.stdout.replace("&lt;", "<").replace("&gt;", ">")  # shown as text, in a row's label
    # what the browser's network stack saw: nothing the page asked for (a page that does fetch is caught so)
    assert page_requests(netlog) == []
    control = tmp_path / "control.html"
    control.write_text('<!DOCTYPE html><title>control</title><img src="http://192.0.2.1/x.png">')
    fetched = browse(control, tmp_path, "--dump-dom", f"--log-net-log={tmp_path / 'control.json'}")
    assert fetched.returncode == 0 and page_requests(tmp_path / "control.json") == ["http://192.0.2.1/x.png"]
    shot = browse(page, tmp_path, f"--screenshot={tmp_path / 'waterfall.png'}", "--window-size=1400,900",
                  "--virtual-time-budget=5000", "--hide-scrollbars")
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert (tmp_path / "waterfall.png").stat().st_size > 10_000  # kept as the test's artifact


def test_a_request_of_500_spans_and_10000_lines_stays_usable(tmp_path: Path) -> None:
    """The page of a big request draws every span's row at once and a span's lines 500 at a time: Chromium has it
    ready in seconds, with the span the address names open."""
    tracking_id, server = "wf-big-1", "a" * 16
    trace_id = "1" * 32
    moment = datetime(2026, 1, 17, 8, 0, tzinfo=UTC)
    files: dict[str, list[str]] = {"a/app.log": [], "a/access.log": [], "b/app.log": [], "b/access.log": []}

    def put(name: str, ms: float, message: str, span: str, parent: str | None = None, **fields: Any) -> None:
        record = {"@timestamp": (moment + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds"),
                  "level": "INFO", "logger": "trackline.api", "tracking_id": tracking_id, "message": message,
                  "pid": 1, "trace_id": trace_id, "span_id": span, **({"parent_span_id": parent} if parent else {}),
                  **fields}
        files[name].append(json.dumps(record))

    put("a/access.log", 9000, "GET /api/fan-out 200", server, logger="gunicorn.access", request_method="GET",
        request_path="/api/fan-out", query_string="", status_code=200, request_time=9.0)
    for number in range(249):  # 249 calls, each the parent of one request of B's: 498 spans, and A's own
        call, callee = f"c{number:015x}", f"d{number:015x}"
        put("a/app.log", 30 * number + 10, f"GET http://b/{number}", call, server, logger="trackline.propagation",
            request_method="GET", url=f"http://b/{number}")
        for step in range(30):
            put("b/app.log", 30 * number + 11 + step / 2, f"step {step} of {number}", callee, call)
        put("b/access.log", 30 * number + 28, f"GET /b/{number} 200", callee, call, logger="gunicorn.access",
            request_method="GET", request_path=f"/b/{number}", query_string="", status_code=200, request_time=0.016)
    put("a/app.log", 8999, "a thread of its own", "e" * 16, server)  # the 500th span
    while sum(map(len, files.values())) < 10_000:
        put("a/app.log", 8990, "working", server)
    for name, lines in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("".join(f"{line}\n" for line in lines))
    page = tmp_path / "big.html"
    written = trace(tracking_id, [tmp_path / "a", tmp_path / "b"], "--html", str(page))
    assert written.returncode == 0 and written.stdout == f"wrote {page}: 500 spans, 10000 lines\n", written.stdout
    started = time.monotonic()
    dumped = browse(page, tmp_path, "--dump-dom", fragment="#span=" + quote(f"{trace_id}/{server}", safe=""))
    took = time.monotonic() - started
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = _Dom()
    dom.feed(dumped.stdout)
    assert dom.body.get("data-ready") == "true" and len(dom.rows) == 500
    assert dom.classes.count("line") == 500  # A's first 500 lines; the rest a click away
    own = sum(1 for line in files["a/app.log"] if f'"span_id": "{server}"' in line) + 1
    assert dom.buttons == [f"show 500 more of {own - 500} lines"]
    drawn = int(dom.body["data-drawn-ms"])  # the page's own time to parse its data and draw: ~0.1 s here
    assert took < 30 and drawn < 10_000, f"Chromium took {took:.1f} s, the page {drawn} ms to draw"


def page_requests(netlog: Path) -> list[str]:
    """The URLs a page asked the network for, from Chromium's net log: requests started with an origin as their
    initiator (the browser's own, its updater's or sign-in's, have none: "not an origin")."""
    log = json.loads(netlog.read_text())
    kinds = {number: name for name, number in log["constants"]["logEventTypes"].items()}
    starts = [event.get("params", {}) for event in log["events"]
              if kinds.get(event["type"]) == "URL_REQUEST_START_JOB"]
    return [start["url"] for start in starts if "url" in start and start.get("initiator") != "not an origin"]


def _with_parents(document: dict[str, Any]) -> Iterator[tuple[int, dict[str, Any], str]]:
    def walk(span: dict[str, Any], depth: int, parent: str) -> Iterator[tuple[int, dict[str, Any], str]]:
        yield depth, span, parent
        for child in span["children"]:
            yield from walk(child, depth + 1, span["id"])

    for root in document["spans"]:
        yield from walk(root, 0, "")
