"""The demo: the blog post's API (its routes, jobs and Celery tasks), served by ``trackline serve`` by default.

It is an app built on trackline, not part of the library: ``create_app()`` wires the tracking layer, the JSON
error handlers and the routes of ``common`` (the post's) and ``jobs``; ``tasks`` is its Celery app
(``trackline worker``'s default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from trackline.body_limit import with_body_limit
from trackline.demo import common, jobs
from trackline.responses import register_error_handlers
from trackline.tracking import TrackingId


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. ``config`` overrides Flask config keys (e.g. ``TRACKING_ID_ALIASES``).

    Logging is configured by whoever runs the app (``trackline serve`` hands ``logging.yaml`` to gunicorn),
    never here, so a worker never re-applies what the master set up.
    """
    app = Flask("trackline")
    if config:
        app.config.update(config)
    app.wsgi_app = with_body_limit(app.wsgi_app, app.config.get("MAX_CONTENT_LENGTH"))  # type: ignore[assignment,method-assign]
    TrackingId(app)  # outside the body limit: its 413 carries the tracking headers too
    register_error_handlers(app)
    for blueprint in (common.blueprint, jobs.blueprint):
        app.register_blueprint(blueprint)
    return app
