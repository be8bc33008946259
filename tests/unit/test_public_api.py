"""``trackline``'s public API is its ``__all__``: every name loads, cheaply, and the demo's old names still work."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import trackline


def test_every_public_name_loads() -> None:
    from trackline.context import get_trace, get_tracking_id
    from trackline.logs import JsonFormatter, TrackingIdFilter, WatchedAppendFileHandler
    from trackline.tracking import TrackingId, TrackingMiddleware

    expected = {"TrackingId": TrackingId, "TrackingMiddleware": TrackingMiddleware, "get_trace": get_trace,
                "get_tracking_id": get_tracking_id, "JsonFormatter": JsonFormatter,
                "TrackingIdFilter": TrackingIdFilter, "WatchedAppendFileHandler": WatchedAppendFileHandler}
    assert {name: getattr(trackline, name) for name in expected} == expected
    assert trackline.propagation is importlib.import_module("trackline.propagation")
    assert set(trackline.__all__) <= set(dir(trackline))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        trackline.nope  # noqa: B018


def test_importing_trackline_loads_neither_flask_nor_gunicorn_nor_yaml() -> None:
    script = ("import sys, trackline; print(sorted(m for m in ('flask', 'gunicorn', 'yaml', 'gevent') if m in"
              " sys.modules))")
    assert subprocess.run([sys.executable, "-c", script], capture_output=True, text=True).stdout == "[]\n"


def test_the_demos_factory_under_its_old_name_warns_and_still_works() -> None:
    from trackline.demo import create_app

    with pytest.warns(DeprecationWarning, match=r"trackline\.demo\.create_app"):
        assert trackline.create_app is create_app


def test_the_demos_celery_app_under_its_old_path_warns_and_is_the_same_app() -> None:
    from trackline.demo.tasks import app

    sys.modules.pop("trackline.worker.demo", None)
    with pytest.warns(DeprecationWarning, match=r"trackline\.demo\.tasks"):
        old = importlib.import_module("trackline.worker.demo")
    assert old.app is app
