"""A tracking ID or trace header that is not a string (a WSGI server breaking PEP 3333, a hand-made Celery message:
see test_celery_policy.py) is invalid whatever it holds: never parsed or used through its ``repr``, logged as the
policy says, never a crash."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import pytest

from trackline.policy import DEFAULT_POLICY
from trackline.tracecontext import parse_traceparent, parse_tracestate
from trackline.tracking import TrackingMiddleware

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


class LooksValid:
    """No string, but its ``repr`` is ``text``."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


NOT_STRINGS = [TRACEPARENT.encode(), 7, [TRACEPARENT], LooksValid(TRACEPARENT)]


@pytest.mark.parametrize("value", NOT_STRINGS)
def test_the_parsers_take_no_value_but_a_string(value: Any) -> None:
    assert parse_traceparent(value) is None
    assert parse_tracestate(value) is None
    assert parse_traceparent(TRACEPARENT, value).tracestate is None


@pytest.mark.parametrize("value", [b"req-1", 12345, LooksValid("req-1")])
def test_the_policy_rejects_a_non_string_id_and_shows_its_repr_escaped(value: Any) -> None:
    tracking_id, rejected = DEFAULT_POLICY.resolve(lambda header: value if header == "X-Tracking-ID" else None, None)
    assert tracking_id != "req-1" and DEFAULT_POLICY.pattern.fullmatch(tracking_id)
    assert rejected == ("X-Tracking-ID", repr(value))


def served(environ: dict[str, Any]) -> tuple[str, str]:
    """The tracking ID and trace-id a request with ``environ``'s headers is served with."""
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        from trackline import get_trace, get_tracking_id

        seen.update(tracking_id=get_tracking_id(), trace=get_trace())
        start_response("200 OK", [])
        return [b"ok"]

    answer = TrackingMiddleware(app, DEFAULT_POLICY)({"REQUEST_METHOD": "GET", "PATH_INFO": "/", **environ},
                                                    lambda status, headers, exc_info=None: None)
    assert list(answer) == [b"ok"]
    answer.close()
    return seen["tracking_id"], seen["trace"].trace_id


@pytest.mark.parametrize("value", NOT_STRINGS)
def test_a_request_with_a_non_string_traceparent_starts_its_own_trace(value: Any,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "trackline"):
        tracking_id, trace_id = served({"HTTP_TRACEPARENT": value, "HTTP_X_TRACKING_ID": "req-1"})
    assert tracking_id == "req-1" and trace_id != TRACE_ID
    [note] = caplog.records
    assert (note.getMessage(), note.rejected_type) == ("ignored invalid traceparent", type(value).__name__)


def test_a_request_with_a_non_string_id_gets_a_new_one(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "trackline"):
        tracking_id, _ = served({"HTTP_X_TRACKING_ID": b"req-1"})
    assert tracking_id != "req-1" and DEFAULT_POLICY.pattern.fullmatch(tracking_id)
    [note] = caplog.records
    assert (note.getMessage(), note.rejected_tracking_id) == ("replaced invalid tracking ID from X-Tracking-ID",
                                                              "b'req-1'")
