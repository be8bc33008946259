"""Work handed off during a request (thread, pool task, greenlet, bound callable) logs that request's ID later.

Each job waits on an Event that the test sets only after the client has the response and the request's
context is gone, so every asserted line is written after the request has returned.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import gevent
import pytest
from flask import Flask

from conftest import assert_contract, read_json_lines
from trackline import propagation
from trackline.app import create_app
from trackline.context import get_tracking_id
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


def test_outgoing_headers_inside_a_request_carry_the_id():
    app = create_app({"TRACKING_ID_HEADER": "X-Request-ID"})

    @app.get("/headers")
    def headers() -> JsonResponse:
        return JsonResponse(data=propagation.outgoing_headers({"Accept": "text/plain"}, header="X-Request-ID"))

    with app.test_client().get("/headers", headers={"X-Request-ID": "out-1"}) as response:
        assert response.json["data"] == {"Accept": "text/plain", "X-Request-ID": "out-1"}
