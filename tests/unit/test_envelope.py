"""The JSON envelope {"code", "msg", "data"}: the post's routes and tests, error statuses, unserializable data."""

from __future__ import annotations

import json
from datetime import datetime
from unittest.mock import patch

import pytest
from flask import Flask, request
from flask.testing import FlaskClient

from support.flask_client import client_for
from support.logs import LogReader
from trackline import responses
from trackline.demo import create_app
from trackline.responses import Success

TEST_EXCEPTION = "This is a test exception"


def test_health(client: FlaskClient) -> None:
    """The post's first test: status, exact content type, both headers and the envelope."""
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Tracking-ID"]
    assert datetime.fromisoformat(response.headers["X-DateTime"]).tzinfo is not None
    assert response.json == {"code": 200, "msg": "GET /api/health success", "data": "OK"}


def test_users_uses_the_data_function(client: FlaskClient) -> None:
    """The post's second test: the data function patched, its result in the envelope, called once."""
    fake_users = [{"id": 7, "name": "Mallory"}]
    with patch("trackline.demo.users.get_users", return_value=fake_users) as get_users:
        response = client.get("/api/users")
    assert response.json == {"code": 200, "msg": "GET /api/users success", "data": fake_users}
    get_users.assert_called_once_with()


def test_names(client: FlaskClient) -> None:
    assert client.get("/api/names").json["data"] == ["Alice", "Bob", "Charlie"]


def test_item_carries_a_datetime(client: FlaskClient) -> None:
    data = client.get("/api/item").json["data"]
    assert {key: data[key] for key in ("id", "name", "price")} == {"id": 101, "name": "Sample Item", "price": 29.99}
    assert datetime.fromisoformat(data["now"]).tzinfo is not None


def test_unhandled_exception_gives_a_generic_500_and_logs_the_traceback(
    logged: LogReader, client: FlaskClient
) -> None:
    response = client.get("/api/error", headers={"X-Tracking-ID": "err-1"})
    assert response.status_code == 500
    assert response.headers["Content-Type"] == "application/json"
    assert response.json == {"code": 500, "msg": "internal error", "data": {"tracking_id": "err-1"}}
    assert TEST_EXCEPTION not in response.get_data(as_text=True)
    [error] = [r for r in logged() if r["level"] == "ERROR"]
    assert error["tracking_id"] == "err-1"
    assert error["message"] == "unhandled exception: GET /api/error"
    assert isinstance(error["exc_info"], str)
    assert error["exc_info"].startswith("Traceback (most recent call last):\n")
    assert error["exc_info"].rstrip().endswith(f"RuntimeError: {TEST_EXCEPTION}")


def test_generated_id_is_the_same_in_header_body_and_log(logged: LogReader, client: FlaskClient) -> None:
    response = client.get("/api/error", headers={"X-Tracking-ID": "not valid"})
    effective = response.headers["X-Tracking-ID"]
    assert response.json["data"]["tracking_id"] == effective
    assert {r["level"]: r["tracking_id"] for r in logged()} == {"WARNING": effective, "ERROR": effective}


@pytest.mark.parametrize(
    ("method", "path", "status", "msg"),
    [
        ("GET", "/api/nope", 404, "GET /api/nope not found"),
        ("POST", "/api/health", 405, "POST /api/health method not allowed"),
        ("DELETE", "/api/users", 405, "DELETE /api/users method not allowed"),
    ],
)
def test_http_errors_keep_their_status_in_the_envelope(
    method: str, path: str, status: int, msg: str, client: FlaskClient
) -> None:
    response = client.open(path, method=method)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert response.json == {"code": status, "msg": msg, "data": None}
    if status == 405:
        assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


def test_request_too_large_is_413_in_the_envelope() -> None:
    app = create_app({"MAX_CONTENT_LENGTH": 16})

    @app.post("/echo")
    def echo() -> Success:
        return Success(data=len(request.get_data()))

    client = client_for(app)
    assert client.post("/echo", data=b"x" * 16).json["data"] == 16
    response = client.post("/echo", data=b"x" * 17)
    assert response.status_code == 413
    assert response.json == {"code": 413, "msg": "POST /echo request entity too large", "data": None}


EXPECTED_CLASSES = {
    "Success": (200, "success"),
    "Fail": (500, "failed"),
    "ArgumentNotFound": (400, "argument not found"),
    "ArgumentInvalid": (400, "argument invalid"),
    "AuthFailed": (401, "auth failed"),
    "ResourceConflict": (409, "resource conflict"),
    "ResourceNotFound": (404, "resource not found"),
    "ResourceForbidden": (403, "resource forbidden"),
}


@pytest.mark.parametrize(("name", "expected"), EXPECTED_CLASSES.items(), ids=EXPECTED_CLASSES.keys())
def test_response_classes_status_and_default_message(
    name: str, expected: tuple[int, str], app: Flask, client: FlaskClient
) -> None:
    @app.get("/answer")
    def answer() -> responses.JsonResponse:
        return getattr(responses, name)()

    @app.get("/answer-custom")
    def answer_custom() -> responses.JsonResponse:
        kind = getattr(responses, name)
        return kind(data={"k": 1}, msg="custom message")

    status, outcome = expected
    response = client.get("/answer")
    assert (response.status_code, response.json) == (status, {"code": status, "msg": f"GET /answer {outcome}",
                                                              "data": None})
    custom = client.get("/answer-custom")
    assert custom.json == {"code": status, "msg": "custom message", "data": {"k": 1}}


def test_problem_classes_take_the_message_first(client: FlaskClient, app: Flask) -> None:
    @app.get("/missing")
    def missing() -> responses.JsonResponse:
        return responses.ArgumentNotFound("name is required", {"argument": "name"})

    assert client.get("/missing").json == {"code": 400, "msg": "name is required", "data": {"argument": "name"}}


class Money:
    def __str__(self) -> str:
        return "12.50 EUR"


def _circular() -> list[object]:
    loop: list[object] = [1]
    loop.append(loop)
    return loop


def test_unknown_objects_are_sent_as_their_string(client: FlaskClient, app: Flask) -> None:
    @app.get("/money")
    def money() -> Success:
        return Success(data={"price": Money()})

    assert client.get("/money").json["data"] == {"price": "12.50 EUR"}


@pytest.mark.parametrize("make_data", [lambda: {(1, 2): "tuple key"}, _circular], ids=["tuple-keys", "circular"])
def test_unserializable_data_gives_a_500_envelope_never_a_broken_body(
    make_data: object, logged: LogReader, client: FlaskClient, app: Flask
) -> None:
    @app.get("/broken")
    def broken() -> Success:
        return Success(data=make_data())  # type: ignore[operator]

    response = client.get("/broken", headers={"X-Tracking-ID": "ser-1"})
    assert response.status_code == 500
    assert json.loads(response.get_data(as_text=True)) == {
        "code": 500, "msg": "response serialization error", "data": {"tracking_id": "ser-1"}}
    [error] = [r for r in logged() if r["level"] == "ERROR"]
    assert error["tracking_id"] == "ser-1"
    assert "Traceback" in error["exc_info"]
