"""trackline.context: one scope per request or task, entered once and left to exactly what was there before."""

from __future__ import annotations

import contextvars
from types import SimpleNamespace
from typing import Any

import gevent
from werkzeug.test import Client

from trackline import context, propagation
from trackline.context import get_trace, get_tracking_id
from trackline.policy import DEFAULT_POLICY, TrackingPolicy
from trackline.server.error_answers import SCOPE_ATTRIBUTE, leave_request_scope
from trackline.tracecontext import new_trace
from trackline.tracking import TrackingMiddleware
from trackline.wsgi import SCOPE_TOKEN_KEY, SERVER_LEAVES_KEY


def echo_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A WSGI app answering with the tracking ID current while it runs."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(get_tracking_id()).encode()]


def test_leaving_restores_nothing_outside_a_request() -> None:
    trace = new_trace()
    token = context.enter("req-1", trace)
    assert (get_tracking_id(), get_trace(), context.current().policy) == ("req-1", trace, DEFAULT_POLICY)
    context.leave(token)
    assert (get_tracking_id(), get_trace(), context.current()) == (None, None, None)


def test_nested_scopes_unwind_one_at_a_time() -> None:
    outer = context.enter("request")
    inner = context.enter("task", task={"task_id": "t-1", "task_name": "demo", "parent_task_id": None})
    assert get_tracking_id() == "task" and context.current().task["task_id"] == "t-1"
    context.leave(inner)
    assert get_tracking_id() == "request" and context.current().task is None
    context.leave(outer)
    assert get_tracking_id() is None


def test_a_scope_left_from_another_context_still_restores_what_was_before() -> None:
    token = context.enter("entered-here")
    contextvars.copy_context().run(context.leave, token)  # a server closing the response elsewhere
    assert get_tracking_id() == "entered-here"  # that context's change is its own
    context.leave(token)
    assert get_tracking_id() is None


def test_a_keep_alive_greenlet_serves_each_request_in_its_own_scope_and_none_between() -> None:
    app = Client(TrackingMiddleware(echo_app, DEFAULT_POLICY))
    seen: list[tuple[str, str | None]] = []

    def connection() -> None:  # one greenlet, several requests, as gunicorn's gevent worker runs keep-alive
        for number in range(3):
            body = app.get("/", headers={"X-Tracking-ID": f"keep-{number}"}, buffered=True).get_data(as_text=True)
            seen.append((body, get_tracking_id()))

    gevent.spawn(connection).join()
    assert seen == [("keep-0", None), ("keep-1", None), ("keep-2", None)]


def test_threads_started_in_a_request_carry_its_scope_and_policy() -> None:
    policy = TrackingPolicy.from_config({"TRACKING_ID_HEADER": "X-Req"})
    token = context.enter("threaded", new_trace(), policy)
    try:
        seen: list[Any] = []
        propagation.start_thread(lambda: seen.append(propagation.outgoing_headers())).join()
    finally:
        context.leave(token)
    [headers] = seen
    assert headers["X-Req"] == "threaded" and "traceparent" in headers


def test_a_server_that_leaves_scopes_itself_keeps_the_request_current_until_post_request() -> None:
    middleware = TrackingMiddleware(echo_app, DEFAULT_POLICY)
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_X_TRACKING_ID": "held-1",
                               SERVER_LEAVES_KEY: True}
    body = middleware(environ, lambda *_: None)
    assert list(body) == [b"held-1"]
    if hasattr(body, "close"):  # as a WSGI server closes it (this app's list has no close)
        body.close()
    assert get_tracking_id() == "held-1"  # gunicorn's lines after the response are still the request's
    req = SimpleNamespace()
    leave_request_scope(req, environ)
    assert get_tracking_id() is None
    assert getattr(req, SCOPE_ATTRIBUTE).tracking_id == "held-1"  # for gunicorn's handle_error, next
    assert SCOPE_TOKEN_KEY in environ
