"""Every output is text (issue 28, item 4), end to end: a real ``trackline serve`` on 127.0.0.1 serving an app that
logs what a client sent (its path and User-Agent) receives hostile values: ESC sequences that clear the screen and
set the window title, CR LF that would forge a row, NUL, C1, DEL and markup. Then every ``trace`` mode and every
``sql`` output over its logs: stdout holds no control character but LF and tab, ``--json`` parses, each output
has the rows it should; headless Chromium on the ``--html`` page runs no script from a value.

The server is the test's own child on a free loopback port, stopped by its PID.
"""

from __future__ import annotations

import csv
import html.parser
import io
import json
import re
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.browser import browse
from support.conf import edit_yaml
from support.http import raw_request
from support.paths import TRACKLINE
from support.server import new_server

ID = "hostile-out"
APP = '''
import logging

log = logging.getLogger("echo")


def app(environ, start_response):
    log.info("hit %s from %s", environ["PATH_INFO"], environ.get("HTTP_USER_AGENT"))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
'''
#: A value that would run if it were ever markup: it sets the title and marks the body.
MARKUP = "<script>document.title='owned'</script><img src=x onerror=\"document.body.dataset.owned='yes'\">"
#: Raw request paths (percent-encoded as a client sends them) and what the app sees of each.
PATHS = {
    "/hit/%1b[2J%1b]0;title%07": "/hit/\x1b[2J\x1b]0;title\x07",
    "/hit/a%0d%0aFORGED%20GET%20/admin%20-%3E%20200": "/hit/a\r\nFORGED GET /admin -> 200",
    "/hit/nul%00c1%c2%9bdel%7f": "/hit/nul\x00c1\xc2\x9bdel\x7f",  # WSGI: the path's bytes as latin-1
    "/hit/" + MARKUP.replace("<", "%3C").replace(">", "%3E").replace(" ", "%20").replace('"', "%22"): "/hit/" + MARKUP,
}
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass
class Served:
    log_dir: Path
    paths: list[str]  # what the access lines hold, in the order they were written


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Served:
    root = tmp_path_factory.mktemp("output-is-text")
    code = root / "code"
    code.mkdir()
    (code / "echo.py").write_text(textwrap.dedent(APP))
    server = new_server(root / "server", args=["--app", "echo:app"], probe="/", warm_up="/")
    edit_yaml(server.conf_dir / "gunicorn.yaml", lambda settings: settings.update(pythonpath=str(code)))
    try:
        server.start()
        for path in PATHS:
            request = (f"GET {path} HTTP/1.1\r\nHost: hostile.test\r\nConnection: close\r\nX-Tracking-ID: {ID}\r\n"
                       f"User-Agent: {MARKUP}\r\n\r\n").encode()
            answer = raw_request(server.port, request)
            assert answer.status == 200, (path, answer.status)
    finally:
        assert server.stop() == 0
    access = [json.loads(line) for line in (server.log_dir / "access.log").read_text().splitlines()]
    return Served(server.log_dir, [record["request_path"] for record in access if record["tracking_id"] == ID])


def run(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(TRACKLINE), *args], capture_output=True, timeout=60)


def text_of(done: subprocess.CompletedProcess[bytes]) -> str:
    """stdout, which must be UTF-8 with no control character but LF and tab, and no row that a value forged."""
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode("utf-8")
    assert CONTROL.findall(out) == [], out
    for row in out.splitlines():
        assert "FORGED" not in row or "\\r\\nFORGED" in row, row
    return out


def test_the_app_saw_and_logged_every_hostile_value(served: Served) -> None:
    # sorted: each access line is written once its answer is sent, by either of two workers, so two requests
    # in a row can log in either order
    assert sorted(served.paths) == sorted(PATHS.values())


def test_plain_trace_prints_each_line_as_json_with_its_values(served: Served) -> None:
    out = text_of(run("trace", ID, "--log-dir", str(served.log_dir)))
    records = [json.loads(row) for row in out.splitlines()]
    assert len(records) == 2 * len(PATHS)  # an access line and the app's line each
    assert [r["request_path"] for r in records if "request_path" in r] == list(PATHS.values())
    assert sum(MARKUP in r["message"] for r in records if r["logger"] == "echo") == len(PATHS)


def test_pretty_shows_one_row_a_line_with_the_values_escaped(served: Served) -> None:
    out = text_of(run("trace", ID, "--log-dir", str(served.log_dir), "--pretty"))
    assert len(out.splitlines()) == 2 * len(PATHS)
    assert "\\u001b[2J\\u001b]0;title\\u0007" in out and "a\\r\\nFORGED" in out
    assert "nul\\u0000c1\u00c2\\u009bdel\\u007f" in out  # U+00C2 is text; U+009B (C1) is not


def test_waterfall_escapes_every_value(served: Served) -> None:
    out = text_of(run("trace", ID, "--log-dir", str(served.log_dir), "--waterfall"))
    assert "\\u001b[2J" in out and "a\\r\\nFORGED" in out and "\\u007f" in out


def test_json_parses_and_keeps_every_value(served: Served) -> None:
    out = text_of(run("trace", ID, "--log-dir", str(served.log_dir), "--json"))
    [document] = [json.loads(row) for row in out.splitlines()]
    assert document["counts"]["lines"] == 2 * len(PATHS)
    found = {line["record"].get("request_path") for span in document["spans"] for line in span["lines"]}
    assert set(PATHS.values()) <= found


def test_sql_table_csv_and_json_lines(served: Served) -> None:
    query = f"SELECT request_path, user_agent FROM access WHERE tracking_id = '{ID}' ORDER BY \"@timestamp\""
    table = text_of(run("sql", query, "--log-dir", str(served.log_dir)))
    assert len(table.splitlines()) == 2 + len(PATHS) + 1 and table.endswith(f"({len(PATHS)} rows)\n")
    rows = list(csv.reader(io.StringIO(text_of(run("sql", query, "--log-dir", str(served.log_dir), "--csv")))))
    assert len(rows) == 1 + len(PATHS) and {len(row) for row in rows} == {2}
    lines = text_of(run("sql", query, "--log-dir", str(served.log_dir), "--json")).splitlines()
    assert [json.loads(line)["request_path"] for line in lines] == list(PATHS.values())
    messages = text_of(run("sql", f"SELECT message FROM app WHERE tracking_id = '{ID}'", "--log-dir",
                           str(served.log_dir), "--csv"))
    assert len(list(csv.reader(io.StringIO(messages)))) == 1 + len(PATHS)


# -- the HTML page in a real browser ----------------------------------------------------------------------------

class _Dom(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.body: dict[str, str] = {}
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_title = tag == "title"
        if tag == "body":
            self.body = {name: value or "" for name, value in attrs}

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False


def test_the_html_page_runs_no_script_from_a_value(served: Served, tmp_path: Path) -> None:
    page = tmp_path / "trace.html"
    text_of(run("trace", ID, "--log-dir", str(served.log_dir), "--html", str(page)))
    assert "<script>document" not in page.read_text() and "<img" not in page.read_text()
    dumped = browse(page, tmp_path, "--dump-dom", "--virtual-time-budget=5000")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = _Dom()
    dom.feed(dumped.stdout)
    assert dom.body.get("data-ready") == "true"  # its own script ran to its end
    assert "data-owned" not in dom.body and dom.title == f"trackline trace {ID}"  # no value's script did
    assert dom.tags.count("script") == 2 and "img" not in dom.tags
    assert MARKUP in html.unescape(dumped.stdout)  # shown, as text
