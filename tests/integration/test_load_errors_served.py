"""An app whose import fails deep inside: file:line in the one line, the traceback where a developer looks
(check-config --verbose, serve's stderr, the refused HUP's exc_info in error.log); and how often each command
imports the app."""

from __future__ import annotations

import signal
import subprocess
import textwrap
from pathlib import Path
from typing import Any

from support.conf import edit_yaml
from support.logs import assert_contract
from support.paths import TRACKLINE
from support.server import Server
from support.waiting import wait_until

ACME_INIT = '''
import os

from acme.config import DATABASE_URL

with open(os.environ["IMPORT_COUNT_FILE"], "a") as count:
    count.write(f"{os.getpid()}\\n")


def create_app():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [DATABASE_URL.encode()]

    return app
'''
ACME_CONFIG = '''
"""Acme's settings, from the environment."""

import os

DEBUG = False
POOL_SIZE = 5
DATABASE_URL = os.environ["DATABASE_URL"]
'''
SPEC = "acme:create_app()"
LINE = f"wsgi_app '{SPEC}': cannot load it: KeyError: 'DATABASE_URL' (acme/config.py:8)"


def acme(make_server: Any, tmp_path: Path, database: str | None) -> Server:
    code = tmp_path / "code" / "acme"
    code.mkdir(parents=True)
    (code / "__init__.py").write_text(textwrap.dedent(ACME_INIT))
    (code / "config.py").write_text(textwrap.dedent(ACME_CONFIG))
    env = {"IMPORT_COUNT_FILE": str(tmp_path / "imports"), "PYTHONDONTWRITEBYTECODE": "1"}
    server = make_server(args=["--app", SPEC], probe="/", warm_up="/",
                         env={**env, "DATABASE_URL": database} if database else env)
    edit_yaml(server.conf_dir / "gunicorn.yaml", lambda s: s.update(pythonpath=str(tmp_path / "code")))
    return server


def run(server: Server, *command: str) -> subprocess.CompletedProcess[str]:
    import os

    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(TRACKLINE_LOG_DIR=str(server.log_dir), TRACKLINE_RUN_DIR=str(server.root / "run"),
               TRACKLINE_BIND="127.0.0.1:0", **server.env)
    return subprocess.run([str(TRACKLINE), *command, "--conf-dir", str(server.conf_dir), *server.args],
                          capture_output=True, text=True, timeout=60, env=env)


def assert_traceback(text: str) -> None:
    assert text.startswith("Traceback (most recent call last):"), text
    assert 'acme/config.py", line 8, in <module>' in text and 'DATABASE_URL = os.environ["DATABASE_URL"]' in text
    assert "from acme.config import DATABASE_URL" in text  # the app's own frame that led there
    assert text.rstrip().endswith("KeyError: 'DATABASE_URL'")


def test_check_config_says_file_and_line_and_verbose_shows_the_traceback(make_server: Any, tmp_path: Path) -> None:
    server = acme(make_server, tmp_path, database=None)
    plain = run(server, "check-config")
    assert (plain.returncode, plain.stderr.splitlines()) == (1, [f"trackline: {LINE}"])
    verbose = run(server, "check-config", "--verbose")
    assert verbose.returncode == 1
    *traceback, line = verbose.stderr.strip().splitlines()
    assert line == f"trackline: {LINE}"
    assert_traceback("\n".join(traceback))


def test_serve_prints_the_traceback_then_the_line_on_stderr(make_server: Any, tmp_path: Path) -> None:
    server = acme(make_server, tmp_path, database=None)
    served = run(server, "serve")
    assert served.returncode == 1
    *traceback, line = served.stderr.strip().splitlines()
    assert line == f"trackline: {LINE}"
    assert_traceback("\n".join(traceback))
    assert "serving on" not in served.stderr


def test_a_hup_onto_broken_code_logs_the_traceback_as_exc_info_of_the_refusal(make_server: Any,
                                                                           tmp_path: Path) -> None:
    server = acme(make_server, tmp_path, database="postgresql://db/acme").start()
    workers = server.wait_for_workers()
    assert server.get("/").body == b"postgresql://db/acme"
    config = tmp_path / "code" / "acme" / "config.py"
    config.write_text(config.read_text().replace('os.environ["DATABASE_URL"]', 'os.environ["DATABASE_URI"]'))
    server.signal(signal.SIGHUP)
    refused = wait_until(lambda: [r for r in server.logs("error.log") if "reload refused" in r["message"]],
                         "the refused reload")
    record = refused[0]
    assert_contract(record)
    assert record["level"] == "ERROR" and record["func"] == "reload" and record["loc"].startswith("application.py:")
    assert record["message"] == ("reload refused, still serving with the previous configuration and workers: "
                                 + LINE.replace("DATABASE_URL'", "DATABASE_URI'"))
    assert 'os.environ["DATABASE_URI"]' in record["exc_info"]
    assert record["exc_info"].endswith("KeyError: 'DATABASE_URI'")
    assert server.wait_for_workers() == workers  # still serving with the old code
    assert server.get("/").body == b"postgresql://db/acme"


def test_how_many_times_a_check_a_start_and_a_reload_import_the_app(make_server: Any, tmp_path: Path) -> None:
    """check-config: once (its child); serve: once in its check's child, then once per worker; a HUP: once in
    its check's child, then once per new worker. docs/your-app.md says why each is needed."""
    server = acme(make_server, tmp_path, database="postgresql://db/acme")
    imports = tmp_path / "imports"

    def count() -> int:
        return len(imports.read_text().splitlines()) if imports.exists() else 0

    assert run(server, "check-config").returncode == 0
    assert count() == 1
    server.start()
    workers = server.wait_for_workers()
    assert count() == 1 + 1 + server.workers
    server.signal(signal.SIGHUP)
    wait_until(lambda: not workers & server.live_workers(), "the old workers to exit")
    server.wait_for_workers()
    assert count() == 1 + (1 + server.workers) * 2
