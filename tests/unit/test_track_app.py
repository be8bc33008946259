"""``track_app`` and ``load_app``: the tracking layer around whatever app trackline serves."""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.test import Client

from trackline import TrackingId
from trackline.appconfig import AppConfig
from trackline.policy import TrackingPolicy
from trackline.server.loading import AppSource, load_app
from trackline.tracking import EXTENSION, TrackingMiddleware, track_app


def test_a_flask_app_that_applied_trackingid_is_not_wrapped_twice_and_takes_app_yaml_policy() -> None:
    app = Flask("own")
    TrackingId(app)
    middleware = app.wsgi_app
    app.get("/")(lambda: "ok")
    assert track_app(app, AppConfig.from_settings({"TRACKING_ID_HEADER": "X-Request-ID", "ACME": 1})) is app
    assert app.wsgi_app is middleware and not isinstance(middleware.app, TrackingMiddleware)
    assert app.config["ACME"] == 1
    response = Client(app).get("/", headers={"X-Request-ID": "from-yaml"}, buffered=True)
    assert response.headers["X-Request-ID"] == "from-yaml" and "X-Tracking-ID" not in response.headers


def test_a_flask_app_without_trackingid_gets_it_and_g() -> None:
    app = Flask("own")
    from flask import g

    app.get("/")(lambda: g.tracking_id)
    track_app(app, AppConfig.from_settings({}))
    assert EXTENSION in app.extensions
    response = Client(app).get("/", headers={"X-Tracking-ID": "g-1"}, buffered=True)
    assert response.get_data(as_text=True) == "g-1" and response.headers["X-Tracking-ID"] == "g-1"


def test_a_plain_wsgi_callable_is_wrapped_with_the_yaml_policy() -> None:
    def plain(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("X-Tracking-ID", "the app's own, dropped")])
        return [environ["HTTP_X_TRACKING_ID"].encode()]

    wrapped = track_app(plain, AppConfig({}, TrackingPolicy.from_config({"TRACKING_ID_MAX_LENGTH": 4})))
    response = Client(wrapped).get("/", headers={"X-Tracking-ID": "too-long"}, buffered=True)
    tracking_id = response.headers["X-Tracking-ID"]
    assert response.headers.getlist("X-Tracking-ID") == [tracking_id] and tracking_id != "too-long"
    assert response.get_data(as_text=True) == tracking_id  # the environ carries the effective ID


def test_the_error_envelope_is_opt_in_for_a_served_flask_app(tmp_path: Any, monkeypatch: Any) -> None:
    (tmp_path / "own_app.py").write_text("from flask import Flask\n\ndef make():\n    return Flask('own')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plain = load_app(AppSource("own_app:make()"), AppConfig.from_settings({}))
    enveloped = load_app(AppSource("own_app:make()"), AppConfig.from_settings({"TRACKLINE_ERROR_ENVELOPE": True}))
    assert Client(plain).get("/nowhere", buffered=True).headers["Content-Type"].startswith("text/html")
    assert Client(enveloped).get("/nowhere", buffered=True).json["code"] == 404
    assert "TRACKLINE_ERROR_ENVELOPE" not in enveloped.config


def test_a_wrapper_around_a_tracked_flask_app_gets_one_id_and_one_header() -> None:
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    inner = Flask("inner")
    TrackingId(inner)
    inner.get("/")(lambda: {"seen": trackline_id()})
    served = track_app(DispatcherMiddleware(inner), AppConfig.from_settings({"TRACKING_ID_HEADER": "X-Req"}))
    response = Client(served).get("/", headers={"X-Req": "outer-1"}, buffered=True)
    assert response.headers.getlist("X-Req") == ["outer-1"] and "X-Tracking-ID" not in response.headers
    assert response.json == {"seen": "outer-1"}


def trackline_id() -> str | None:
    from trackline import get_tracking_id

    return get_tracking_id()
