"""The tracking-ID policy seen through the Flask test client: kept, generated, replaced (and logged), aliases."""

from __future__ import annotations

import itertools
import uuid

import pytest
from flask import Flask, g, request
from flask.testing import FlaskClient

from support.flask_client import client_for
from support.logs import LogReader
from trackline import TrackingId, get_tracking_id
from trackline.demo import create_app
from trackline.policy import random_uuid4
from trackline.responses import Success


def is_uuid4(value: str) -> bool:
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return False
    return str(parsed) == value and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_generated_ids_are_random_version_4_uuids_in_their_canonical_text() -> None:
    ids = [random_uuid4() for _ in range(20_000)]
    assert all(is_uuid4(new_id) for new_id in ids) and len(set(ids)) == len(ids)
    # every one of the 122 random bits takes both values: nothing is fixed but the version and the variant
    bits = [f"{uuid.UUID(new_id).int:0128b}" for new_id in ids[:2000]]
    fixed = {position for position in range(128) if len({b[position] for b in bits}) == 1}
    assert fixed == {48, 49, 50, 51, 64, 65}


def add_probe(app: Flask) -> Flask:
    """Register ``GET /probe`` answering what the route sees: the ContextVar, ``g`` and the request header."""

    @app.get("/probe")
    def probe() -> Success:
        header = app.extensions["trackline.tracking"].policy.header
        return Success(data={"context": get_tracking_id(), "g": g.tracking_id, "header": request.headers.get(header)})

    return app


@pytest.mark.parametrize("incoming", ["abc", "x", "a" * 128, "Az09._:@/+=-", "user@host:8080/a+b=c"])
def test_valid_incoming_id_is_kept(incoming: str, logged: LogReader, client: FlaskClient) -> None:
    response = client.get("/api/health", headers={"X-Tracking-ID": incoming})
    assert response.headers["X-Tracking-ID"] == incoming
    assert [(r["level"], r["tracking_id"]) for r in logged()] == [("INFO", incoming)]


def test_missing_id_is_generated_as_a_fresh_uuid4_without_warning(logged: LogReader, client: FlaskClient) -> None:
    first = client.get("/api/health").headers["X-Tracking-ID"]
    second = client.get("/api/health").headers["X-Tracking-ID"]
    assert is_uuid4(first) and is_uuid4(second) and first != second
    assert [(r["level"], r["tracking_id"]) for r in logged()] == [("INFO", first), ("INFO", second)]


#: Invalid incoming values (as a WSGI server puts them in the environ: latin-1 str) and their logged excerpt.
INVALID = {
    "empty": ("", ""),
    "129 chars": ("a" * 129, "a" * 64),
    "space": ("abc def", "abc def"),
    "tab": ("abc\tdef", "abc\\tdef"),
    "double quote": ('abc"def', 'abc"def'),
    "backslash": ("abc\\def", "abc\\\\def"),
    "non-ASCII str": ("caf\u00e9", "caf\\xe9"),
    "UTF-8 bytes as latin-1": ("caf\u00e9".encode().decode("latin-1"), "caf\\xc3\\xa9"),
    "literal backslash-r-n": ("abc\\r\\nX-Injected: 1", "abc\\\\r\\\\nX-Injected: 1"),
    "real CRLF": ("abc\r\nX-Injected: 1", "abc\\r\\nX-Injected: 1"),
    "JSON injection": ('"}{"level":"FAKE', '"}{"level":"FAKE'),
    "long control chars": ("\x00" * 200, "\\x00" * 64),
}


@pytest.mark.parametrize(("incoming", "excerpt"), INVALID.values(), ids=INVALID.keys())
def test_invalid_id_is_replaced_and_the_rejected_value_logged_safely(
    incoming: str, excerpt: str, logged: LogReader, client: FlaskClient
) -> None:
    response = client.get("/api/health", environ_overrides={"HTTP_X_TRACKING_ID": incoming})
    new_id = response.headers["X-Tracking-ID"]
    assert response.status_code == 200
    assert is_uuid4(new_id)
    warning, info = logged()
    assert (warning["level"], warning["tracking_id"], info["tracking_id"]) == ("WARNING", new_id, new_id)
    assert warning["rejected_tracking_id"] == excerpt
    assert warning["rejected_length"] == len(incoming)
    assert "X-Tracking-ID" in warning["message"]
    assert warning["rejected_tracking_id"].isascii() and warning["rejected_tracking_id"].isprintable()


def test_non_ascii_header_sent_by_the_client_is_replaced(client: FlaskClient) -> None:
    """The same through the client's own header encoding, not just the environ."""
    response = client.get("/api/health", headers={"X-Tracking-ID": "caf\u00e9"})
    assert is_uuid4(response.headers["X-Tracking-ID"])


def test_route_sees_the_effective_id_in_context_g_and_request_header(client: FlaskClient, app: Flask) -> None:
    add_probe(app)
    kept = client.get("/probe", headers={"X-Tracking-ID": "kept-1"})
    replaced = client.get("/probe", headers={"X-Tracking-ID": "bad id"})
    generated = client.get("/probe")
    for response in (kept, replaced, generated):
        effective = response.headers["X-Tracking-ID"]
        assert response.json["data"] == {"context": effective, "g": effective, "header": effective}
    assert kept.headers["X-Tracking-ID"] == "kept-1"


ALIASES = {"TRACKING_ID_ALIASES": ["X-Request-ID", "X-Correlation-ID"]}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-Request-ID": "req-1"}, "req-1"),
        ({"X-Correlation-ID": "corr-1"}, "corr-1"),
        ({"X-Correlation-ID": "corr-1", "X-Request-ID": "req-1"}, "req-1"),
        ({"X-Tracking-ID": "main-1", "X-Request-ID": "req-1", "X-Correlation-ID": "corr-1"}, "main-1"),
        ({"X-Tracking-ID": "bad id", "X-Request-ID": "req-1"}, "req-1"),
        ({"X-Tracking-ID": "", "X-Request-ID": "bad\tid", "X-Correlation-ID": "corr-1"}, "corr-1"),
    ],
    ids=["first-alias", "second-alias", "alias-order", "main-wins", "invalid-main-falls-through",
         "invalid-main-and-first-alias"],
)
def test_alias_headers_in_order(headers: dict[str, str], expected: str) -> None:
    app = add_probe(create_app(ALIASES))
    response = client_for(app).get("/probe", headers=headers)
    assert response.headers["X-Tracking-ID"] == expected
    assert response.json["data"] == {"context": expected, "g": expected, "header": expected}


def test_invalid_main_and_aliases_give_a_new_id_and_log_the_first_rejected(logged: LogReader) -> None:
    client = client_for(create_app(ALIASES))
    response = client.get("/api/health", headers={"X-Tracking-ID": "bad one", "X-Request-ID": "bad two"})
    warning, _ = logged()
    assert is_uuid4(response.headers["X-Tracking-ID"])
    assert (warning["rejected_tracking_id"], warning["tracking_id"]) == ("bad one", response.headers["X-Tracking-ID"])


def test_custom_header_name_is_read_and_echoed() -> None:
    app = add_probe(create_app({"TRACKING_ID_HEADER": "X-Request-Id"}))
    client = client_for(app)
    response = client.get("/probe", headers={"X-Request-Id": "custom-1", "X-Tracking-ID": "ignored"})
    assert response.headers["X-Request-Id"] == "custom-1"
    assert "X-Tracking-ID" not in response.headers
    assert response.json["data"] == {"context": "custom-1", "g": "custom-1", "header": "custom-1"}
    assert is_uuid4(client.get("/probe").headers["X-Request-Id"])


@pytest.mark.parametrize(
    ("generator", "check"),
    [
        (itertools.count(1).__next__, lambda value: value == "1"),
        ("secrets.token_hex", lambda value: len(value) == 64 and int(value, 16) >= 0),
    ],
    ids=["callable", "import-path"],
)
def test_custom_generator_makes_missing_and_replaced_ids(generator: object, check: object) -> None:
    client = client_for(create_app({"TRACKING_ID_GENERATOR": generator}))
    made = client.get("/api/health").headers["X-Tracking-ID"]
    replaced = client.get("/api/health", headers={"X-Tracking-ID": "bad id"}).headers["X-Tracking-ID"]
    assert check(made)  # type: ignore[operator]
    assert replaced != made and replaced != "bad id"


def test_custom_max_length_and_characters() -> None:
    client = client_for(create_app({"TRACKING_ID_MAX_LENGTH": 4, "TRACKING_ID_CHARACTERS": "a-f"}))
    assert client.get("/api/health", headers={"X-Tracking-ID": "abcd"}).headers["X-Tracking-ID"] == "abcd"
    for rejected in ("abcde", "ABCD", "a-b"):
        assert is_uuid4(client.get("/api/health", headers={"X-Tracking-ID": rejected}).headers["X-Tracking-ID"])


def test_get_tracking_id_is_none_outside_and_after_a_request(client: FlaskClient) -> None:
    assert get_tracking_id() is None
    response = client.get("/api/health", headers={"X-Tracking-ID": "during-1"})
    assert response.headers["X-Tracking-ID"] == "during-1"
    assert get_tracking_id() is None


def test_id_is_cleared_after_a_request_whose_exception_escapes_the_app() -> None:
    """Outside trackline's gunicorn hooks nothing else would clear it: later lines must not carry it."""
    app = Flask(__name__)
    app.config["TESTING"] = True  # a view's exception propagates to the caller
    TrackingId(app)

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError(f"boom in {get_tracking_id()}")

    with pytest.raises(RuntimeError, match="boom in escaped-1"):
        app.test_client().get("/boom", headers={"X-Tracking-ID": "escaped-1"})
    assert get_tracking_id() is None


def test_id_is_cleared_when_the_server_closes_the_response(app: Flask) -> None:
    """With an unbuffered client, the ID lives until the WSGI iterable is closed, then is gone."""
    response = app.test_client().get("/api/health", headers={"X-Tracking-ID": "open-1"})
    assert get_tracking_id() == "open-1"
    response.close()
    assert get_tracking_id() is None


def test_every_error_response_carries_the_headers(client: FlaskClient) -> None:
    for method, path, status in [("GET", "/nope", 404), ("DELETE", "/api/health", 405), ("GET", "/api/error", 500)]:
        response = client.open(path, method=method, headers={"X-Tracking-ID": f"id-{status}"})
        assert response.status_code == status
        assert response.headers["X-Tracking-ID"] == f"id-{status}"
        assert response.headers["X-DateTime"]


def test_g_tracking_id_is_the_requests_unless_the_app_sets_its_own() -> None:
    """Code written against the blog post reads ``g.tracking_id`` (also ``g.get`` and ``in g``); an app that sets
    it keeps its own value; outside a request it is None, as get_tracking_id() is."""
    app = Flask(__name__)
    TrackingId(app)

    @app.get("/read")
    def read() -> dict[str, object]:
        return {"attr": g.tracking_id, "get": g.get("tracking_id"), "in": "tracking_id" in g,
                "other": g.get("other", "default"), "other_in": "other" in g}

    @app.get("/own")
    def own() -> dict[str, object]:
        g.tracking_id = "set-by-the-app"
        return {"attr": g.tracking_id, "get": g.get("tracking_id"), "header_id": get_tracking_id()}

    with app.app_context():
        assert (g.tracking_id, g.get("tracking_id", "none"), "tracking_id" in g) == (None, "none", False)
        with pytest.raises(AttributeError):
            _ = g.missing
    client = app.test_client()
    assert client.get("/read", headers={"X-Tracking-ID": "abc"}).json == {
        "attr": "abc", "get": "abc", "in": True, "other": "default", "other_in": False}
    assert client.get("/own", headers={"X-Tracking-ID": "abc"}).json == {
        "attr": "set-by-the-app", "get": "set-by-the-app", "header_id": "abc"}
    TrackingId(app)  # applied twice: g's class is not wrapped twice
    assert app.app_ctx_globals_class.__mro__.count(app.app_ctx_globals_class.__mro__[1]) == 1
