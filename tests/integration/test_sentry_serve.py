"""Sentry under real ``trackline serve``: a served app that inits sentry-sdk (its default integrations, gevent
workers) sends the event of a 500 to the test's loopback DSN server, tagged and in the request's trace."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.sentry import Inbox

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"

SENTRY_APP = '''
import logging

import sentry_sdk
from sentry_sdk.integrations.logging import LoggingIntegration

from trackline.demo import create_app as demo_app
from trackline.propagation.sentry import TracklineIntegration


def create_app():
    sentry_sdk.init(integrations=[TracklineIntegration(), LoggingIntegration(event_level=logging.ERROR)])  # SENTRY_DSN
    return demo_app()
'''


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    inbox = Inbox()
    yield inbox
    inbox.close()


def test_a_served_apps_500_reaches_sentry_once_tagged_in_the_span_of_its_log_line(
        make_server: Any, inbox: Inbox, tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "sentry_app.py").write_text(SENTRY_APP)
    server = make_server(args=["--app", "sentry_app:create_app()"], env={"SENTRY_DSN": inbox.dsn})
    settings_file = server.conf_dir / "gunicorn.yaml"
    settings = yaml.safe_load(settings_file.read_text())
    settings_file.write_text(yaml.safe_dump({**settings, "pythonpath": str(code)}, sort_keys=False))
    server.start()

    answer = server.get("/api/error", {"X-Tracking-ID": "served-1", "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"})
    assert (answer.status, answer.headers["X-Tracking-ID"]) == (500, "served-1")
    deadline = time.monotonic() + 20
    while not inbox.tagged("served-1") and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)  # room for a second event, were there one
    [event] = inbox.tagged("served-1")
    [line] = [r for r in server.logs("app.log") if r["tracking_id"] == "served-1"]
    assert line["message"] == "unhandled exception: GET /api/error"
    assert [value["type"] for value in event["exception"]["values"]] == ["RuntimeError"]
    trace = event["contexts"]["trace"]
    assert (trace["trace_id"], trace["span_id"], trace["parent_span_id"]) == (
        TRACE_ID, line["span_id"], CALLER_SPAN) == (line["trace_id"], line["span_id"], line["parent_span_id"])
    assert not [event for event in inbox.events() if event.get("tags", {}).get("tracking_id", "").startswith("warm-up")]
