"""``TracklineIntegration``: the real sentry-sdk sends to a loopback server that the test runs as the DSN's host.

What reaches that server is what Sentry would store: the event of a 500 carries the ``tracking_id`` tag and the
request's trace (the ``traceparent``'s trace-id, the span of the request's log lines).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from flask.testing import FlaskClient
from sentry_sdk.integrations.dedupe import DedupeIntegration
from sentry_sdk.integrations.flask import FlaskIntegration
from sentry_sdk.integrations.logging import LoggingIntegration

from support.sentry import Inbox as SentryInbox
from trackline import context
from trackline.propagation.sentry import TracklineIntegration, in_trace
from trackline.tracecontext import new_trace

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
SENTRY_3 = not sentry_sdk.VERSION.startswith("2.")

class Inbox(SentryInbox):
    """The test's Sentry; what this process's sentry-sdk sends is flushed before it is read."""

    def events(self) -> list[dict[str, Any]]:
        sentry_sdk.flush(timeout=10)
        return super().events()



@pytest.fixture
def inbox() -> Iterator[Inbox]:
    inbox = Inbox()
    yield inbox
    inbox.close()


@pytest.fixture
def sentry(inbox: Inbox) -> Iterator[Callable[..., None]]:
    """``sentry(**options)``: ``sentry_sdk.init`` toward the inbox with Flask's, logging's and trackline's
    integrations only (the defaults would patch threads and urllib for the rest of the test session); undone after.

    ``LoggingIntegration(event_level=ERROR)`` is what docs/tracing.md asks for: trackline's 500 handler logs the
    exception with ERROR, and sentry-sdk 3 makes events of such lines only when told to.
    """

    def init(trackline: bool = True, **options: Any) -> None:
        integrations = [FlaskIntegration(), LoggingIntegration(event_level=logging.ERROR), DedupeIntegration()]
        sentry_sdk.init(dsn=inbox.dsn, default_integrations=False, auto_enabling_integrations=False,
                        integrations=[*integrations, TracklineIntegration()] if trackline else integrations,
                        release="test", **options)

    yield init
    sentry_sdk.get_client().close(timeout=5)
    sentry_sdk.Scope.get_global_scope().set_client(None)


def request_lines(logged: Callable[..., list[dict[str, Any]]], tracking_id: str) -> list[dict[str, Any]]:
    return [line for line in logged() if line["tracking_id"] == tracking_id]


def test_a_500_reaches_sentry_once_with_the_tracking_id_tag_in_the_span_of_its_log_lines(
        sentry: Callable[..., None], inbox: Inbox, client: FlaskClient, logged: Any) -> None:
    sentry()
    answer = client.get("/api/error", headers={"X-Tracking-ID": "sentry-1", "traceparent": TRACEPARENT})
    assert (answer.status_code, answer.headers["X-Tracking-ID"]) == (500, "sentry-1")
    [event] = inbox.events()
    [line] = request_lines(logged, "sentry-1")  # the handler's "unhandled exception" line, with the traceback
    assert event["tags"]["tracking_id"] == "sentry-1"
    assert [value["type"] for value in event["exception"]["values"]] == ["RuntimeError"]
    trace = event["contexts"]["trace"]
    assert (trace["trace_id"], trace["parent_span_id"]) == (TRACE_ID, CALLER_SPAN)
    assert (trace["trace_id"], trace["span_id"]) == (line["trace_id"], line["span_id"])
    [(envelope, _)] = inbox.items("event")
    assert envelope["trace"]["trace_id"] == TRACE_ID  # the dynamic sampling context follows


def test_a_request_that_starts_a_trace_puts_its_event_in_it(sentry: Callable[..., None], inbox: Inbox,
                                                            client: FlaskClient, logged: Any) -> None:
    sentry()
    answer = client.get("/api/error")
    tracking_id = answer.headers["X-Tracking-ID"]
    [event] = inbox.events()
    [line] = request_lines(logged, tracking_id)
    assert event["tags"]["tracking_id"] == tracking_id
    assert event["contexts"]["trace"]["trace_id"] == line["trace_id"] == uuid.UUID(tracking_id).hex
    assert event["contexts"]["trace"]["span_id"] == line["span_id"]
    assert "parent_span_id" not in event["contexts"]["trace"]  # the request is the root of its trace


def test_with_sentry_traces_the_request_span_carries_the_tracking_id_and_links_to_the_requests_span(
        sentry: Callable[..., None], inbox: Inbox, client: FlaskClient, logged: Any) -> None:
    sentry(traces_sample_rate=1.0)
    client.get("/api/error", headers={"X-Tracking-ID": "sentry-traced", "traceparent": TRACEPARENT})
    [event] = inbox.events()
    [line] = request_lines(logged, "sentry-traced")
    trace = event["contexts"]["trace"]
    assert (event["tags"]["tracking_id"], trace["trace_id"], trace["span_id"]) == (
        "sentry-traced", TRACE_ID, line["span_id"])
    if SENTRY_3:  # spans are streamed: Sentry's request span keeps its trace-id and links to the request's span
        [request_span] = [span for _, payload in inbox.items("span") for span in payload["items"]
                          if span["attributes"].get("sentry.op", {}).get("value") == "http.server"]
        assert request_span["attributes"]["tracking_id"]["value"] == "sentry-traced"
        assert {"trace_id": TRACE_ID, "span_id": line["span_id"]} in request_span["links"]
    else:  # the transaction is an event: it moves into the request's trace whole
        [(_, transaction)] = inbox.items("transaction")
        assert transaction["tags"]["tracking_id"] == "sentry-traced"
        assert transaction["contexts"]["trace"]["trace_id"] == TRACE_ID
        assert {span["trace_id"] for span in transaction.get("spans", [])} <= {TRACE_ID}


def test_an_event_outside_any_request_has_no_tracking_id(sentry: Callable[..., None], inbox: Inbox) -> None:
    sentry()
    sentry_sdk.capture_message("outside")
    [event] = inbox.events()
    assert "tracking_id" not in event.get("tags", {})
    assert event["contexts"]["trace"]["trace_id"] != TRACE_ID


def test_an_event_in_a_tasks_scope_carries_its_id_and_span(sentry: Callable[..., None], inbox: Inbox) -> None:
    sentry()
    trace = new_trace().child()
    token = context.enter("task-7", trace, task={"task_id": "t-1", "task_name": "demo.add", "parent_task_id": None})
    try:
        sentry_sdk.capture_message("in a task")
    finally:
        context.leave(token)
    [event] = inbox.events()
    assert event["tags"]["tracking_id"] == "task-7"
    assert {key: event["contexts"]["trace"][key] for key in ("trace_id", "span_id", "parent_span_id")} == {
        "trace_id": trace.trace_id, "span_id": trace.span_id, "parent_span_id": trace.parent_id}


def test_a_client_without_the_integration_leaves_events_as_they_are(sentry: Callable[..., None], inbox: Inbox,
                                                                    client: FlaskClient) -> None:
    sentry()  # the processor is installed for the process ...
    sentry(trackline=False)  # ... and the current client says whether it applies
    client.get("/api/error", headers={"X-Tracking-ID": "sentry-off", "traceparent": TRACEPARENT})
    [event] = inbox.events()
    assert "tracking_id" not in event.get("tags", {})
    assert event["contexts"]["trace"]["trace_id"] != TRACE_ID  # sentry-sdk reads sentry-trace, not traceparent


def test_without_sentry_configured_a_request_is_answered_and_logged_the_same(
        sentry: Callable[..., None], inbox: Inbox, client: FlaskClient, logged: Any) -> None:
    def exchange(tracking_id: str) -> tuple[Any, ...]:
        answer = client.get("/api/error", headers={"X-Tracking-ID": tracking_id, "traceparent": TRACEPARENT})
        [line] = request_lines(logged, tracking_id)
        kept = ("level", "logger", "message", "trace_id", "parent_span_id")
        return (answer.status_code, answer.headers["X-Tracking-ID"] == tracking_id, answer.get_json()["msg"],
                {key: line[key] for key in kept}, set(line))

    sentry()
    with_sentry = exchange("with-sentry")
    sentry_sdk.get_client().close(timeout=5)
    sentry_sdk.Scope.get_global_scope().set_client(None)
    sent = len(inbox.envelopes)
    assert exchange("without-sentry") == with_sentry
    assert len(inbox.envelopes) == sent  # nothing more was sent


def test_a_sentry_sdk_2_transaction_event_moves_into_the_trace_whole() -> None:
    trace = new_trace().child()
    event: Any = {"type": "transaction", "contexts": {"trace": {
        "trace_id": "1" * 32, "span_id": "a" * 16, "op": "http.server",
        "dynamic_sampling_context": {"trace_id": "1" * 32, "sample_rate": "1.0"}}},
        "spans": [{"trace_id": "1" * 32, "span_id": "b" * 16, "parent_span_id": "a" * 16}]}
    in_trace(event, trace)
    assert event["contexts"]["trace"] == {
        "trace_id": trace.trace_id, "span_id": "a" * 16, "op": "http.server", "parent_span_id": trace.parent_id,
        "dynamic_sampling_context": {"trace_id": trace.trace_id, "sample_rate": "1.0"}}
    assert event["spans"] == [{"trace_id": trace.trace_id, "span_id": "b" * 16, "parent_span_id": "a" * 16}]


def test_nothing_else_in_trackline_imports_sentry_sdk() -> None:
    package = Path(context.__file__).parent
    importing = sorted(str(path.relative_to(package)) for path in package.rglob("*.py")
                       if "sentry_sdk" in path.read_text(encoding="utf-8"))
    assert importing == ["propagation/sentry.py"]
