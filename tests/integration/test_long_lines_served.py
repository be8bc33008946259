"""The line cap in a real ``trackline serve``: a 1.5 MB app message and a 1.5 MB traceback each land as one valid
line within the cap (1 MiB by default), cut with the marker and keeping the request's ID; with a smaller cap
(TRACKLINE_MAX_LINE_BYTES) an access line with a long User-Agent is cut the same way, in a field preset too."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

from support.conf import edit_yaml
from support.server import Server
from support.waiting import wait_until

MB = 1_500_000
MARKER = re.compile(r"\.\.\.\[truncated (\d+) of (\d+) bytes\]$")
LOUD_APP = '''
import logging

log = logging.getLogger("loud")


def app(environ, start_response):
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("b" * 1_500_000)
    if environ["PATH_INFO"] == "/":
        log.info("m" * 1_500_000, extra={"note": "kept"})
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"logged"]
'''


def loud_server(make_server: Any, tmp_path: Path, env: dict[str, str] | None = None) -> Server:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "loud.py").write_text(textwrap.dedent(LOUD_APP))
    server = make_server(env=env, args=["--app", "loud:app"], probe="/probe", warm_up="/probe")
    edit_yaml(server.conf_dir / "gunicorn.yaml", lambda settings: settings.update(pythonpath=str(code)))
    return server


def lines_of(server: Server, name: str, tracking_id: str) -> list[tuple[bytes, dict[str, Any]]]:
    """Each raw line (with its newline) of ``name`` that carries ``tracking_id``, and the line parsed. A last line
    without its newline is still being written (a 1 MiB ``os.write`` shows up in parts): it is left for the next
    read, as ``support.logs.read_json_lines`` does."""
    raw = (server.log_dir / name).read_bytes().splitlines(keepends=True)
    return [(line, parsed) for line in raw
            if line.endswith(b"\n") and (parsed := json.loads(line))["tracking_id"] == tracking_id]


def test_a_huge_message_and_a_huge_traceback_land_whole_within_the_cap(make_server: Any, tmp_path: Path) -> None:
    server = loud_server(make_server, tmp_path).start()
    assert server.get("/", headers={"X-Tracking-ID": "loud-1"}).status == 200
    assert server.get("/boom", headers={"X-Tracking-ID": "loud-2"}).status == 500
    wait_until(lambda: lines_of(server, "error.log", "loud-2"), "the traceback in error.log")
    [(line, message)] = lines_of(server, "app.log", "loud-1")
    assert len(line) <= 1_048_576 and line.endswith(b"}\n")
    assert message["message"].startswith("mmmm") and MARKER.search(message["message"])
    assert (message["truncated"], message["note"], message["logger"], message["level"]) == (True, "kept", "loud",
                                                                                            "INFO")
    assert message["original_bytes"] > MB and len(message["trace_id"]) == 32 and message["@timestamp"]
    [(line, error)] = [(line, record) for line, record in lines_of(server, "error.log", "loud-2")
                       if "exc_info" in record]
    assert len(line) <= 1_048_576 and error["truncated"] is True
    assert MARKER.search(error["exc_info"]) and error["exc_info"].startswith("Traceback")
    for name in ("access.log", "error.log", "app.log"):  # every other line is written as before: no flag
        assert all("truncated" not in record for record in server.logs(name)
                   if record["tracking_id"] not in ("loud-1", "loud-2")), name


def test_a_smaller_cap_cuts_an_access_line_in_a_preset_too(make_server: Any, tmp_path: Path) -> None:
    server = loud_server(make_server, tmp_path, env={"TRACKLINE_MAX_LINE_BYTES": "4096"})
    edit_yaml(server.conf_dir / "logging.yaml",
              lambda config: [formatter.update(fields="datadog") for formatter in config["formatters"].values()])
    server.start()
    agent = "agent/" + "a" * 6000
    assert server.get("/", headers={"X-Tracking-ID": "long-agent", "User-Agent": agent}).status == 200
    wait_until(lambda: lines_of(server, "access.log", "long-agent"), "the access line")
    [(line, access)] = lines_of(server, "access.log", "long-agent")
    assert len(line) <= 4096 and access["truncated"] is True
    assert access["http"]["useragent"].startswith("agent/aaa")
    removed, original = map(int, MARKER.search(access["http"]["useragent"]).groups())
    assert original == len(agent) and removed > 2000
    assert (access["http"]["status_code"], access["http"]["url"], access["status"]) == (200, "/", "info")
    [(line, _)] = lines_of(server, "app.log", "long-agent")  # the app's 1.5 MB message: 4096 bytes
    assert len(line) <= 4096
