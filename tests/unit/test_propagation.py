"""Work handed off during a request (thread, pool task, greenlet, bound callable) logs that request's ID later;
outgoing calls (``outgoing_headers``, ``urlopen``, ``instrument()`` clients) carry the ID and a child span.

Each job waits on an Event that the test sets only after the client has the response and the request's
context is gone, so every asserted line is written after the request has returned.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import gevent
import httpx
import pytest
import requests
from flask import Flask

from support.logs import assert_contract, read_json_lines
from support.processes import run_python
from trackline import propagation
from trackline.context import get_tracking_id
from trackline.demo import create_app
from trackline.responses import JsonResponse

log = logging.getLogger("trackline.test.background")

#: The loggers logging.yaml configures; restored after each test.
WAIT = 10.0

Job = Callable[[], None]
#: Hands a job off (to a thread, pool, greenlet...); returns a callable that waits for the job to finish.
Starter = Callable[[Job], Callable[[], None]]


def _job(released: threading.Event) -> None:
    """The background work: wait until the test says the request is over, then log."""
    if not released.wait(WAIT):
        raise TimeoutError("the test never released the job")
    log.info("background line")


def _plain_thread(job: Job) -> Callable[[], None]:
    thread = threading.Thread(target=job, daemon=True)
    thread.start()
    return lambda: thread.join(WAIT)


def _helper_thread(job: Job) -> Callable[[], None]:
    thread = propagation.start_thread(job)
    return lambda: thread.join(WAIT)


def _bound_thread(job: Job) -> Callable[[], None]:
    return _plain_thread(propagation.bind_context(job))


def _pool_task(job: Job) -> Callable[[], None]:
    executor = ThreadPoolExecutor(max_workers=2)
    future = propagation.submit(executor, job)

    def wait() -> None:
        future.result(WAIT)
        executor.shutdown()

    return wait


def _greenlet(job: Job) -> Callable[[], None]:
    greenlet = propagation.spawn(job)
    return lambda: greenlet.get(timeout=WAIT)  # re-raises what the job raised


def _plain_greenlet(job: Job) -> Callable[[], None]:
    greenlet = gevent.spawn(job)
    return lambda: greenlet.get(timeout=WAIT)


STARTERS: dict[str, Starter] = {
    "start_thread": _helper_thread,
    "submit": _pool_task,
    "spawn": _greenlet,
    "bind_context": _bound_thread,
}
WITHOUT_HELPER = {"threading.Thread": _plain_thread, "gevent.spawn": _plain_greenlet}


def _app_starting(starter: Starter, released: threading.Event, waits: list[Callable[[], None]]) -> Flask:
    """The trackline app plus ``POST /start``, which hands ``_job`` off with ``starter`` and answers 202."""
    app = create_app()

    @app.post("/start")
    def start() -> JsonResponse:
        waits.append(starter(lambda: _job(released)))
        return JsonResponse(code=202, msg="started")

    return app


def _run_after_response(starter: Starter, app_log: Path, tracking_id: str) -> list[dict[str, Any]]:
    """Request ``/start`` with ``tracking_id``, release the job once the request is over; the job's lines."""
    released = threading.Event()
    waits: list[Callable[[], None]] = []
    client = _app_starting(starter, released, waits).test_client()
    with client.post("/start", headers={"X-Tracking-ID": tracking_id}) as response:
        assert response.status_code == 202
        assert response.headers["X-Tracking-ID"] == tracking_id
    assert get_tracking_id() is None, "the request's context should be gone once its response is closed"
    assert not [r for r in read_json_lines(app_log) if r["message"] == "background line"], "job ran too early"
    released.set()
    (wait,) = waits
    wait()
    return [r for r in read_json_lines(app_log) if r["message"] == "background line"]


@pytest.mark.parametrize("starter", STARTERS.values(), ids=STARTERS.keys())
def test_background_line_carries_the_request_id_after_the_response(app_log, starter):
    tracking_id = f"bg-{starter.__name__.strip('_')}"
    (record,) = _run_after_response(starter, app_log, tracking_id)
    assert_contract(record)
    assert record["tracking_id"] == tracking_id
    assert record["logger"] == log.name


@pytest.mark.parametrize("starter", WITHOUT_HELPER.values(), ids=WITHOUT_HELPER.keys())
def test_without_a_helper_the_background_line_has_no_id(app_log, starter):
    (record,) = _run_after_response(starter, app_log, "bg-no-helper")
    assert record["tracking_id"] is None


def test_concurrent_jobs_keep_their_own_ids(app_log):
    """Many requests in flight at once (threads serving the test client): each job logs its own request's ID."""
    released = threading.Event()
    waits: list[Callable[[], None]] = []
    app = _app_starting(_helper_thread, released, waits)
    ids = [f"concurrent-{n}" for n in range(40)]

    def call(tracking_id: str) -> str:
        with app.test_client().post("/start", headers={"X-Tracking-ID": tracking_id}) as response:
            return response.headers["X-Tracking-ID"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(call, ids)) == ids
    released.set()
    for wait in waits:
        wait()
    lines = [r for r in read_json_lines(app_log) if r["message"] == "background line"]
    assert sorted(r["tracking_id"] for r in lines) == sorted(ids)


def test_bind_context_snapshots_the_id_at_binding_time(app_log):
    """A callable bound inside a request and called after it (even twice) keeps that request's ID."""
    bound: list[Callable[[], None]] = []
    app = create_app()

    @app.get("/bind")
    def bind() -> JsonResponse:
        bound.append(propagation.bind_context(lambda: log.info("bound call")))
        return JsonResponse(msg="bound")

    with app.test_client().get("/bind", headers={"X-Tracking-ID": "bound-1"}):
        pass
    with app.test_client().get("/bind", headers={"X-Tracking-ID": "bound-2"}):
        pass
    log.info("outside any request")
    for call in (*bound, bound[0]):
        call()
    records = [r for r in read_json_lines(app_log) if r["logger"] == log.name]
    assert [(r["message"], r["tracking_id"]) for r in records] == [
        ("outside any request", None),
        ("bound call", "bound-1"),
        ("bound call", "bound-2"),
        ("bound call", "bound-1"),
    ]


def test_outgoing_headers_outside_a_request_add_nothing():
    assert propagation.outgoing_headers({"Accept": "application/json"}) == {"Accept": "application/json"}


def test_outgoing_headers_inside_a_request_carry_the_id_and_a_new_child_span_each_call():
    app = create_app({"TRACKING_ID_HEADER": "X-Request-ID"})

    @app.get("/headers")
    def headers() -> JsonResponse:
        return JsonResponse(data=[propagation.outgoing_headers({"Accept": "text/plain"}) for _ in range(2)])

    with app.test_client().get("/headers", headers={"X-Request-ID": "out-1"}) as response:
        first, second = response.json["data"]
    for sent in (first, second):
        assert set(sent) == {"Accept", "X-Request-ID", "traceparent"} and sent["X-Request-ID"] == "out-1"
    assert first["traceparent"][:36] == second["traceparent"][:36]  # one trace, two child spans
    assert first["traceparent"] != second["traceparent"]


# instrument(): requests, httpx (sync and async) and urlopen against a local server that records what it gets.

TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-03")
OURS = ("x-tracking-id", "traceparent", "tracestate")


class Recorder(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 recording each request's headers (names lowercased); ``/redirect?to=URL``
    answers 302 to URL."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[dict[str, str]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def do_GET(self) -> None:
        self.server.received.append({name.lower(): value for name, value in self.headers.items()})
        target = parse_qs(urlsplit(self.path).query).get("to")
        body = json.dumps({"ok": True}).encode()
        self.send_response(302 if target else 200)
        if target:
            self.send_header("Location", target[0])
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(WAIT)


Get = Callable[[str], int]


def _requests() -> Get:
    session = propagation.instrument(requests.Session())
    return lambda url: session.get(url, timeout=WAIT).status_code


def _httpx() -> Get:
    client = propagation.instrument(httpx.Client(timeout=WAIT, follow_redirects=True))
    return lambda url: client.get(url).status_code


def _httpx_async() -> Get:
    """An ``httpx.AsyncClient`` driven by ``asyncio.run`` (each call a new loop: no connection kept)."""
    client = propagation.instrument(httpx.AsyncClient(timeout=WAIT, follow_redirects=True,
                                                      limits=httpx.Limits(max_keepalive_connections=0)))

    async def get(url: str) -> int:
        return (await client.get(url)).status_code

    return lambda url: asyncio.run(get(url))


def _urlopen() -> Get:
    def get(url: str) -> int:
        with propagation.urlopen(url, timeout=WAIT) as response:
            return response.status

    return get


CLIENTS: dict[str, Callable[[], Get]] = {
    "requests": _requests, "httpx": _httpx, "httpx-async": _httpx_async, "urlopen": _urlopen,
}
clients = pytest.mark.parametrize("make_client", CLIENTS.values(), ids=CLIENTS.keys())


def _calling_app(get: Get, url: str, config: dict[str, Any] | None = None) -> Flask:
    """The trackline app plus ``GET /call`` (logs "calling", then calls ``url`` twice) and ``GET /call-later``
    (hands one call to a ``start_thread`` thread that makes it once the response is done)."""
    app = create_app(config)
    released = threading.Event()
    app.config["test.released"] = released
    app.config["test.threads"] = []

    @app.get("/call")
    def call() -> JsonResponse:
        log.info("calling")
        return JsonResponse(data=[get(url), get(url)])

    @app.get("/call-later")
    def call_later() -> JsonResponse:
        log.info("calling")

        def later() -> None:
            if released.wait(WAIT):
                get(url)

        app.config["test.threads"].append(propagation.start_thread(later))
        return JsonResponse(code=202, msg="later")

    return app


def _calls_of(app_log: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The request's "calling" line and the lines ``trackline.propagation`` logged for its outgoing calls."""
    records = read_json_lines(app_log)
    (calling,) = [r for r in records if r["message"] == "calling"]
    return calling, [r for r in records if r["logger"] == "trackline.propagation"]


def _assert_children(received: list[dict[str, str]], calling: dict[str, Any], calls: list[dict[str, Any]],
                     url: str, tracking_id: str) -> None:
    """Each received request carries ``tracking_id`` and a child span of the request logged in ``calling``,
    which ``trackline.propagation`` logged as that call's ``span_id``; no two calls share a span."""
    assert len(received) == len(calls) >= 1
    spans = []
    for headers, call in zip(received, calls, strict=True):
        assert headers["x-tracking-id"] == tracking_id and "tracestate" not in headers
        match = TRACEPARENT.fullmatch(headers["traceparent"])
        assert match is not None, headers
        trace_id, parent_id = match.groups()
        assert trace_id == calling["trace_id"]
        assert (call["trace_id"], call["span_id"], call["parent_span_id"]) == (trace_id, parent_id,
                                                                               calling["span_id"])
        assert (call["message"], call["request_method"], call["url"]) == (f"GET {url}", "GET", url)
        assert call["tracking_id"] == tracking_id and call["level"] == "INFO"
        spans.append(parent_id)
    assert len(set(spans)) == len(spans) and calling["span_id"] not in spans


@clients
def test_inside_a_request_each_call_carries_the_id_and_its_own_child_span(app_log, recorder, make_client):
    url = f"{recorder.url}/echo"
    with _calling_app(make_client(), url).test_client().get("/call", headers={"X-Tracking-ID": "out-7"}) as resp:
        assert resp.status_code == 200 and resp.json["data"] == [200, 200]
    calling, calls = _calls_of(app_log)
    _assert_children(recorder.received, calling, calls, url, "out-7")
    assert len(calls) == 2


@clients
def test_a_thread_started_with_propagation_calls_with_the_request_id_after_the_response(app_log, recorder,
                                                                                        make_client):
    url = f"{recorder.url}/echo"
    app = _calling_app(make_client(), url)
    with app.test_client().get("/call-later", headers={"X-Tracking-ID": "later-3"}) as response:
        assert response.status_code == 202
    assert get_tracking_id() is None and recorder.received == []
    app.config["test.released"].set()
    (thread,) = app.config["test.threads"]
    thread.join(WAIT)
    assert not thread.is_alive()
    calling, calls = _calls_of(app_log)
    _assert_children(recorder.received, calling, calls, url, "later-3")


@clients
def test_outside_a_request_nothing_is_added_and_nothing_logged(app_log, recorder, make_client):
    get = make_client()
    assert get(f"{recorder.url}/echo") == 200
    (headers,) = recorder.received
    assert not set(OURS) & set(headers)
    assert not [r for r in read_json_lines(app_log) if r["logger"] == "trackline.propagation"]


@clients
@pytest.mark.parametrize(("patterns", "sent"), [
    (["127.0.0.*"], True), (["localhost", "127.0.0.1"], True), (["*.internal.example", "10.*"], False),
], ids=["glob", "exact", "other-hosts"])
def test_only_hosts_in_tracking_id_propagate_to_get_the_headers(app_log, recorder, make_client, patterns, sent):
    url = f"{recorder.url}/echo"
    app = _calling_app(make_client(), url, {"TRACKING_ID_PROPAGATE_TO": patterns})
    with app.test_client().get("/call", headers={"X-Tracking-ID": "hosts-1"}) as response:
        assert response.json["data"] == [200, 200]
    calling, calls = _calls_of(app_log)
    if sent:
        _assert_children(recorder.received, calling, calls, url, "hosts-1")
    else:
        assert len(recorder.received) == 2 and calls == []
        assert not [name for headers in recorder.received for name in OURS if name in headers]


@clients
def test_a_redirect_to_a_host_left_out_gets_none_of_the_headers(app_log, recorder, make_client):
    target = f"http://localhost:{recorder.server_address[1]}/echo"
    url = f"{recorder.url}/redirect?to={target}"
    app = _calling_app(make_client(), url, {"TRACKING_ID_PROPAGATE_TO": ["127.0.0.1"]})
    with app.test_client().get("/call", headers={"X-Tracking-ID": "redirect-1"}) as response:
        assert response.json["data"] == [200, 200]
    first_hop, second_hop, *_ = recorder.received
    assert len(recorder.received) == 4
    assert first_hop["x-tracking-id"] == "redirect-1" and "traceparent" in first_hop
    assert not [name for name in OURS if name in second_hop]


def test_instrument_refuses_what_it_cannot_instrument_and_is_idempotent():
    with pytest.raises(TypeError, match=r"cannot instrument object: expected a requests\.Session"):
        propagation.instrument(object())
    session = requests.Session()
    assert propagation.instrument(propagation.instrument(session)) is session


WITHOUT_CLIENT_LIBRARIES = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("requests", "httpx"):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, Block())
import trackline.propagation.http
from trackline.demo import create_app
app = create_app({"DOWNSTREAM_URL": "http://127.0.0.1:9"})
with app.test_client().get("/api/relay", headers={"X-Tracking-ID": "no-libs"}) as response:
    print(response.status_code, response.json["msg"])
assert "requests" not in sys.modules and "httpx" not in sys.modules
"""


def test_without_requests_and_httpx_the_core_works_and_relay_says_what_to_install():
    result = run_python(WITHOUT_CLIENT_LIBRARIES)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "503 GET /api/relay needs requests: pip install 'trackline[requests]'"
