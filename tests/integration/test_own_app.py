"""A team's own app served by trackline: the example package, a bare WSGI callable, broken apps, HUP onto new code."""

from __future__ import annotations

import json
import signal
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.conf import edit_yaml
from support.http import Response, raw_request
from support.logs import assert_access_line, assert_contract, assert_lines_complete
from support.paths import REPO, TRACKLINE
from support.server import Server, new_server
from support.waiting import wait_until

EXAMPLE = REPO / "examples" / "acme-orders"
ACME = "acme_orders:create_app()"
HOSTILE_ID = "x" * 200  # over TRACKING_ID_MAX_LENGTH: replaced


def acme_server(root: Path, how: str) -> Server:
    """The example served with ``--app`` and gunicorn.yaml's ``chdir``, or ``wsgi_app`` + ``pythonpath``."""
    server = new_server(root, probe="/prices/1", warm_up="/prices/2")
    if how == "--app":
        server.args = ["--app", ACME]
        edit_yaml(server.conf_dir / "gunicorn.yaml", lambda s: s.update(chdir=str(EXAMPLE)))
    else:
        edit_yaml(server.conf_dir / "gunicorn.yaml", lambda s: s.update(wsgi_app=ACME, pythonpath=str(EXAMPLE)))
    return server


@pytest.fixture(scope="module", params=["--app", "wsgi_app"])
def acme(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = acme_server(tmp_path_factory.mktemp(f"acme-{request.param.strip('-')}"), request.param).start()
    yield server
    assert server.stop() == 0
    assert_lines_complete(server.log_dir)


def by_id(server: Server, name: str, tracking_id: str) -> list[dict[str, Any]]:
    return [r for r in server.logs(name) if r["tracking_id"] == tracking_id]


def answered(response: Response) -> str:
    """The response's tracking ID, checked to come with X-DateTime."""
    assert "X-DateTime" in response.headers, response.headers
    return response.headers["X-Tracking-ID"]


def test_every_answer_of_the_example_carries_its_id_into_each_line(acme: Server) -> None:
    created = acme.request("/orders", method="POST", headers={"X-Tracking-ID": "order-create-1"})
    unnamed = acme.request("/orders", method="POST")
    hostile = acme.request("/prices/3", headers={"X-Tracking-ID": HOSTILE_ID})
    missing = acme.get("/orders/999")
    failed = acme.get("/orders/fail")
    streamed = acme.get("/orders/export")
    quoted = acme.get("/orders/1/quote", headers={"X-Tracking-ID": "quote-1"})

    assert (created.status, answered(created)) == (201, "order-create-1")
    assert unnamed.status == 201 and len(answered(unnamed)) == 36  # a generated UUID4
    assert hostile.status == 200 and answered(hostile) not in (HOSTILE_ID, "")
    # the app's own error bodies, not trackline's envelope
    assert (missing.status, missing.json()) == (404, {"error": "Not Found", "status": 404})
    assert (failed.status, failed.json()) == (500, {"error": "something went wrong at Acme"})
    assert streamed.status == 200 and streamed.body.startswith(b"id,item,state\n")
    assert quoted.status == 200 and quoted.json()["price"] == 10.99 and answered(quoted) == "quote-1"

    expected_app_lines = {
        "order-create-1": {"order created", "order confirmed"},  # the second from a background thread
        answered(unnamed): {"order created", "order confirmed"},
        answered(hostile): {"replaced invalid tracking ID from X-Tracking-ID", "priced"},
        answered(missing): {"no such order"},
        answered(failed): {"order service failed"},
        answered(streamed): {"export sent"},  # logged while the body streamed
        # priced by the call the quote made (logged as it went out), with the same ID
        "quote-1": {"quoted", "priced", f"GET {acme.url}/prices/1"},
    }
    paths = {"order-create-1": ["/orders"], answered(unnamed): ["/orders"], answered(hostile): ["/prices/3"],
             answered(missing): ["/orders/999"], answered(failed): ["/orders/fail"],
             answered(streamed): ["/orders/export"], "quote-1": ["/orders/1/quote", "/prices/1"]}
    wait_until(lambda: all(expected <= {r["message"] for r in by_id(acme, "app.log", tracking_id)}
                           for tracking_id, expected in expected_app_lines.items()), "every app line")
    for tracking_id, expected in expected_app_lines.items():
        lines = by_id(acme, "app.log", tracking_id)
        assert {r["message"] for r in lines} == expected, tracking_id
        for record in lines:
            assert_contract(record)
        assert sorted(r["request_path"] for r in by_id(acme, "access.log", tracking_id)) == sorted(paths[tracking_id])
    for record in acme.logs("access.log"):
        assert_access_line(record)
    failure = by_id(acme, "app.log", answered(failed))[0]
    assert failure["logger"] == "acme_orders" and "the order database is on fire" in failure["exc_info"]
    assert {r["logger"] for r in by_id(acme, "app.log", "quote-1")} == {"acme.orders", "acme.pricing",
                                                                       "trackline.propagation"}


BARE_APP = '''
import logging

log = logging.getLogger("plain")


def app(environ, start_response):
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("escaped the app")
    log.info("plain hello")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]
'''


def write_module(directory: Path, name: str, source: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def test_a_bare_wsgi_callable_gets_the_header_the_access_line_and_ids_on_its_lines(make_server: Any,
                                                                                 tmp_path: Path) -> None:
    code = tmp_path / "code"
    write_module(code, "plain", BARE_APP)
    server = make_server(args=["--app", "plain:app"], probe="/", warm_up="/")
    edit_yaml(server.conf_dir / "gunicorn.yaml", lambda s: s.update(pythonpath=str(code)))
    server.start()
    hello = server.get("/", headers={"X-Tracking-ID": "bare-1"})
    boom = server.get("/boom", headers={"X-Tracking-ID": "bare-boom"})
    assert (hello.status, hello.body, answered(hello)) == (200, b"hello", "bare-1")
    assert boom.status == 500 and answered(boom) == "bare-boom"  # gunicorn answered the escaped exception
    wait_until(lambda: by_id(server, "error.log", "bare-boom"), "the traceback in error.log")
    assert [r["message"] for r in by_id(server, "app.log", "bare-1")] == ["plain hello"]
    assert [r["status_code"] for r in by_id(server, "access.log", "bare-1")] == [200]
    assert [r["status_code"] for r in by_id(server, "access.log", "bare-boom")] == [500]
    assert "escaped the app" in by_id(server, "error.log", "bare-boom")[0]["exc_info"]


CONFIGURED_APP = '''
from flask import Flask, current_app


def create():
    app = Flask("configured")

    @app.get("/config")
    def config():
        return {"greeting": current_app.config["ACME_GREETING"], "secret": current_app.config["SECRET_KEY"],
                "aliases": current_app.config["TRACKING_ID_ALIASES"]}

    return app
'''


def test_app_yaml_configures_the_served_app_secrets_from_files_and_the_envelope_on_request(
        make_server: Any, tmp_path: Path) -> None:
    code = tmp_path / "code"
    write_module(code, "configured", CONFIGURED_APP)
    (tmp_path / "credentials").mkdir()
    (tmp_path / "credentials" / "secret_key").write_text("s3cr3t\n")
    server = make_server(args=["--app", "configured:create()"], probe="/config", warm_up="/config",
                         env={"CREDENTIALS_DIRECTORY": str(tmp_path / "credentials"), "GREETING": "hello"})
    edit_yaml(server.conf_dir / "gunicorn.yaml", lambda s: s.update(pythonpath=str(code)))
    (server.conf_dir / "app.yaml").write_text(
        "TRACKING_ID_ALIASES: [X-Request-ID]\n"
        "ACME_GREETING: ${GREETING} from app.yaml\n"
        "SECRET_KEY: !file ${CREDENTIALS_DIRECTORY}/secret_key\n"
        "TRACKLINE_ERROR_ENVELOPE: true\n"
        "MAX_CONTENT_LENGTH: 1024\n")
    checked = subprocess.run([str(TRACKLINE), "check-config", "--conf-dir", str(server.conf_dir),
                              "--app", "configured:create()"], capture_output=True, text=True, timeout=60,
                             env={**server_env(server), **server.env})
    assert checked.returncode == 0, checked.stderr
    assert "s3cr3t" not in checked.stdout and "SECRET_KEY" in checked.stdout  # names a secret, never shows it
    server.start()
    answer = server.get("/config", headers={"X-Request-ID": "configured-1"})
    assert answer.json() == {"greeting": "hello from app.yaml", "secret": "s3cr3t", "aliases": ["X-Request-ID"]}
    assert answer.headers["X-Tracking-ID"] == "configured-1"
    missing = server.get("/nowhere")
    assert missing.status == 404 and missing.json()["msg"] == "GET /nowhere not found"  # the opted-in envelope
    too_large = raw_request(server.port, b"POST /config HTTP/1.1\r\nHost: x\r\nX-Tracking-ID: big-1\r\n"
                                         b"Content-Length: 2048\r\n\r\n" + b"x" * 2048)
    assert (too_large.status, too_large.headers["X-Tracking-ID"]) == (413, "big-1")  # before the app's 405


def server_env(server: Server) -> dict[str, str]:
    import os

    return {**os.environ, "TRACKLINE_LOG_DIR": str(server.log_dir), "TRACKLINE_RUN_DIR": str(server.root / "run"),
            "TRACKLINE_BIND": "127.0.0.1:0"}


BROKEN = {
    "no such module": ("nope_module:app", "ModuleNotFoundError: No module named 'nope_module'"),
    "a factory without its call": ("failing:create", "TypeError: failing:create is not a WSGI app (it cannot be "
                                   "called with environ and start_response); a factory needs its call: "
                                   "module:factory()"),
    "no such attribute": ("plain:nothing", "Failed to find attribute 'nothing' in 'plain'."),
    "factory raises": ("failing:create()", "ValueError: no database at postgres://db (failing.py:2)"),
    "not a call or name": ("plain:app[", "Failed to parse 'app[' as an attribute name or function call."),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_an_app_that_cannot_load_is_one_line_from_check_config_and_serve(case: str, tmp_path: Path) -> None:
    spec, reason = BROKEN[case]
    code = tmp_path / "code"
    write_module(code, "plain", BARE_APP)
    write_module(code, "failing", "def create():\n    raise ValueError('no database at postgres://db')\n")
    server = new_server(tmp_path)
    edit_yaml(server.conf_dir / "gunicorn.yaml", lambda s: s.update(pythonpath=str(code)))
    expected = f"trackline: wsgi_app {spec!r}: cannot load it: {reason}"
    for command in ("check-config", "serve"):
        done = subprocess.run([str(TRACKLINE), command, "--conf-dir", str(tmp_path / "conf"), "--app", spec],
                              capture_output=True, text=True, timeout=60, env=server_env(server))
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        *traceback, line = done.stderr.strip().splitlines()
        assert line == expected, command
        # serve also prints the traceback of an error the app's code raised above it (the journal); check-config
        # only with --verbose (tests/integration/test_load_errors_served.py)
        raised_by_the_app = command == "serve" and case == "factory raises"
        assert traceback[:1] == (["Traceback (most recent call last):"] if raised_by_the_app else [])


VERSIONED = '''
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"VERSION"]
'''


def test_hup_loads_new_code_and_keeps_the_old_workers_when_the_new_code_is_broken(make_server: Any,
                                                                                 tmp_path: Path) -> None:
    code = tmp_path / "code"
    module = write_module(code, "versioned", VERSIONED.replace("VERSION", "v1"))
    server = make_server(args=["--app", "versioned:app"], probe="/", warm_up="/",
                         env={"PYTHONDONTWRITEBYTECODE": "1"})
    edit_yaml(server.conf_dir / "gunicorn.yaml", lambda s: s.update(pythonpath=str(code)))
    server.start()
    assert server.get("/").body == b"v1"
    workers = server.wait_for_workers()

    module.write_text("def app(environ, start_response):\n    return oops(\n")  # a deploy that does not import
    server.signal(signal.SIGHUP)
    refused = wait_until(lambda: [r for r in server.logs("error.log") if "reload refused" in r["message"]],
                         "the refused reload")
    assert "wsgi_app 'versioned:app': cannot load it: SyntaxError" in refused[0]["message"]
    assert server.wait_for_workers() == workers
    assert server.get("/").body == b"v1"

    module.write_text(textwrap.dedent(VERSIONED.replace("VERSION", "v2 fixed")))
    server.signal(signal.SIGHUP)
    wait_until(lambda: server.get("/").body == b"v2 fixed", "the new code to serve")
    wait_until(lambda: not workers & server.live_workers(), "the old workers to exit")
    assert server.stop() == 0


def test_example_quote_reaches_a_second_service_with_the_same_id(make_server: Any) -> None:
    """PRICING_URL from app.yaml: the quote's outgoing call lands on another trackline, same ID in both logs."""
    pricing = make_server(name="pricing", args=["--app", ACME], probe="/prices/1", warm_up="/prices/2")
    edit_yaml(pricing.conf_dir / "gunicorn.yaml", lambda s: s.update(pythonpath=str(EXAMPLE)))
    pricing.start()
    orders = make_server(name="orders", args=["--app", ACME], probe="/prices/1", warm_up="/prices/2")
    edit_yaml(orders.conf_dir / "gunicorn.yaml", lambda s: s.update(pythonpath=str(EXAMPLE)))
    (orders.conf_dir / "app.yaml").write_text(f"PRICING_URL: {pricing.url}\n")
    orders.start()
    quoted = orders.get("/orders/7/quote", headers={"X-Tracking-ID": "two-hosts-7"})
    assert quoted.status == 200, quoted.body
    wait_until(lambda: by_id(pricing, "access.log", "two-hosts-7") and by_id(orders, "access.log", "two-hosts-7"),
               "both access lines")
    assert [r["request_path"] for r in by_id(pricing, "access.log", "two-hosts-7")] == ["/prices/7"]
    assert [r["message"] for r in by_id(pricing, "app.log", "two-hosts-7")] == ["priced"]
    assert json.loads(quoted.body)["price"] == 16.99


SELF_MINDED = '''
import logging.config
import threading
import time

from flask import Flask

import trackline

threading.Thread(target=time.sleep, args=(3600,)).start()  # a scheduler started at import, not a daemon


def create_app():
    settings = trackline.app_settings()  # app.yaml, while the factory builds the app
    logging.config.dictConfig({"version": 1, "root": {"level": "DEBUG", "handlers": ["plain"]},
                               "handlers": {"plain": {"class": "logging.StreamHandler"}}})
    app = Flask("self_minded")

    @app.get("/")
    def index():
        logging.getLogger("self_minded").info("index")
        return {"database": settings["DATABASE_URL"]}

    return app
'''


@pytest.mark.slow
def test_an_app_imported_from_the_cwd_that_configures_logging_and_starts_a_thread(tmp_path: Path) -> None:
    """No pythonpath: the app is found in the directory trackline runs in, as plain gunicorn finds it; its own
    dictConfig does not take the log files away; its import-time thread does not hold the check."""
    write_module(tmp_path, "self_minded", SELF_MINDED)
    server = new_server(tmp_path, args=["--app", "self_minded:create_app()"], probe="/", warm_up="/")
    (server.conf_dir / "app.yaml").write_text("DATABASE_URL: postgresql://db/acme\n")
    checked = subprocess.run([str(TRACKLINE), "check-config", "--conf-dir", str(server.conf_dir), *server.args],
                             capture_output=True, text=True, timeout=60, env=server_env(server), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    server.start()
    try:
        answer = server.get("/", headers={"X-Tracking-ID": "self-1"})
        assert answer.json() == {"database": "postgresql://db/acme"}
        wait_until(lambda: by_id(server, "access.log", "self-1"), "the access line")
        assert [r["message"] for r in by_id(server, "app.log", "self-1")] == ["index"]
        assert any("logging.yaml is applied again" in r["message"] for r in server.logs("error.log"))
    finally:
        assert server.stop() == 0
