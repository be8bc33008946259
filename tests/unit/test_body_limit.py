"""BodyLimit: a body over MAX_CONTENT_LENGTH gets the 413 envelope, read by its route or not."""

from __future__ import annotations

import io

from flask import request
from flask.testing import FlaskClient

from support.flask_client import client_for
from support.logs import LogReader
from trackline.demo import create_app

LIMIT = 1024


def client() -> FlaskClient:
    return client_for(create_app({"MAX_CONTENT_LENGTH": LIMIT}))


def post_chunked(size: int) -> int:
    """POST /api/jobs with a ``size``-byte chunked body (no Content-Length); the status."""
    return client().post("/api/jobs", input_stream=io.BytesIO(b"x" * size),
                         headers={"Transfer-Encoding": "chunked"}).status_code


def test_a_declared_length_over_the_limit_is_refused_before_the_route_runs(logged: LogReader) -> None:
    response = client().post("/api/jobs", data=b"x" * (LIMIT + 1), headers={"X-Tracking-ID": "big-1"})
    assert response.status_code == 413
    assert response.get_json() == {"code": 413, "msg": "POST /api/jobs request entity too large", "data": None}
    assert response.headers["X-Tracking-ID"] == "big-1" and "X-DateTime" in response.headers
    assert not [r for r in logged() if r["message"] == "job started"]  # the route never ran


def test_a_chunked_body_is_refused_once_it_passes_the_limit_and_one_within_it_reaches_the_route() -> None:
    assert post_chunked(LIMIT + 1) == 413
    assert post_chunked(LIMIT) == 202
    assert client().post("/api/jobs", data=b"x" * LIMIT).status_code == 202


def test_flask_says_the_same_for_a_route_that_reads_its_body() -> None:
    app = create_app({"MAX_CONTENT_LENGTH": None})
    app.config["MAX_CONTENT_LENGTH"] = LIMIT  # after create_app: only Flask's own check applies
    app.add_url_rule("/echo", "echo", lambda: {"size": len(request.get_data())}, methods=["POST"])
    response = client_for(app).post("/echo", data=b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert response.get_json()["msg"] == "POST /echo request entity too large"
