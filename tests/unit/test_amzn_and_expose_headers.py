"""Two policy features seen through the Flask test client: the ID from ``X-Amzn-Trace-Id``'s ``Root=`` field, and
``Access-Control-Expose-Headers`` naming the tracking header so that a browser may read it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Response

from support.logs import read_json_lines
from trackline.demo import create_app
from trackline.policy import DEFAULTS, TrackingPolicy

ROOT = "1-67891233-abcdef012345678912345678"
AMZN = {"TRACKING_ID_ALIASES": ["X-Request-ID", "X-Amzn-Trace-Id"]}


def _tracking_id(headers: dict[str, str], config: dict[str, Any] | None = None) -> str:
    with create_app(config).test_client().get("/api/names", headers=headers) as response:
        assert response.status_code == 200
        return response.headers["X-Tracking-ID"]


@pytest.mark.parametrize("value", [
    f"Root={ROOT}", f"Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1",
    f"Self=1-67891234-12456789abcdef012345678;Root={ROOT}",
    f"Self=1-67891234-12456789abcdef012345678; Root={ROOT};Sampled=0",
], ids=["root", "root-parent-sampled", "self-then-root", "space-after-semicolon"])
def test_amzn_trace_id_gives_its_root_field(app_log, value):
    assert _tracking_id({"X-Amzn-Trace-Id": value}, AMZN) == ROOT


def test_an_earlier_alias_wins_over_amzn_trace_id(app_log):
    assert _tracking_id({"X-Request-ID": "req-1", "X-Amzn-Trace-Id": f"Root={ROOT}"}, AMZN) == "req-1"


@pytest.mark.parametrize("value", ["Self=1-67891234-12456789abcdef012345678", "Root=", "Root=bad root!", "garbage"],
                         ids=["no-root", "empty-root", "invalid-root", "garbage"])
def test_amzn_trace_id_without_a_valid_root_falls_through_like_any_alias(app_log, value):
    tracking_id = _tracking_id({"X-Amzn-Trace-Id": value}, AMZN)
    uuid.UUID(tracking_id)
    (warning,) = [r for r in read_json_lines(app_log) if r["level"] == "WARNING"]
    assert warning["message"] == "replaced invalid tracking ID from X-Amzn-Trace-Id"
    assert warning["rejected_length"] == len(value)


def test_amzn_root_is_taken_only_from_an_amzn_header(app_log):
    assert _tracking_id({"X-Request-ID": f"Root={ROOT}"}, AMZN) == f"Root={ROOT}"


def _exposed(config: dict[str, Any] | None = None, app_sets: list[str] | None = None) -> list[str]:
    """The ``Access-Control-Expose-Headers`` values of a response whose route set ``app_sets`` itself."""
    app = create_app(config)

    @app.get("/cors")
    def cors() -> Response:
        response = Response("{}", content_type="application/json")
        for value in app_sets or ():
            response.headers.add("Access-Control-Expose-Headers", value)
        return response

    with app.test_client().get("/cors") as response:
        return response.headers.getlist("Access-Control-Expose-Headers")


@pytest.mark.parametrize(("app_sets", "exposed"), [
    (None, ["X-Tracking-ID"]),
    (["X-Total-Count"], ["X-Total-Count, X-Tracking-ID"]),
    (["X-Total-Count, ETag", "Link"], ["X-Total-Count, ETag, Link, X-Tracking-ID"]),
    (["x-tracking-id"], ["x-tracking-id"]),
    (["ETag, X-Tracking-ID"], ["ETag, X-Tracking-ID"]),
], ids=["alone", "merged", "several-merged-into-one", "already-there-any-case", "already-in-a-list"])
def test_responses_expose_the_tracking_header_merged_never_duplicated(app_log, app_sets, exposed):
    assert _exposed(app_sets=app_sets) == exposed


def test_expose_follows_the_header_name_and_errors_carry_it_too(app_log):
    app = create_app({"TRACKING_ID_HEADER": "X-Request-ID"})
    with app.test_client().get("/no-such-route") as response:
        assert response.status_code == 404
        assert response.headers.getlist("Access-Control-Expose-Headers") == ["X-Request-ID"]


def test_expose_can_be_switched_off(app_log):
    assert _exposed({"TRACKING_ID_EXPOSE_HEADER": False}) == []
    assert _exposed({"TRACKING_ID_EXPOSE_HEADER": False}, ["ETag"]) == ["ETag"]


@pytest.mark.parametrize(("key", "value", "error"), [
    ("TRACKING_ID_EXPOSE_HEADER", "yes", "must be true or false, not 'yes'"),
    ("TRACE_SAMPLED", 1, "must be true or false, not 1"),
    ("TRACKING_ID_PROPAGATE_TO", "*.example.com", "must be a list of host patterns"),
    ("TRACKING_ID_PROPAGATE_TO", ["ok", ""], "must be a list of host patterns"),
])
def test_new_keys_are_validated(key, value, error):
    with pytest.raises(ValueError, match=error):
        TrackingPolicy.from_config({**DEFAULTS, key: value})
