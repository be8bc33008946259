"""Acme's order API: a Flask app of its own, which trackline serves with ``--app 'acme_orders:create_app()'``.

It knows nothing of trackline but two helpers (``trackline.propagation``, for work that leaves the request);
trackline adds the tracking ID, the JSON logs and everything else when it loads the app.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from acme_orders import orders, pricing


def create_app(config: Mapping[str, Any] | None = None, tracked: bool = False) -> Flask:
    """The app. ``tracked=True`` applies ``trackline.TrackingId`` here, as an app run some other way would."""
    app = Flask(__name__)
    app.config.update(PRICING_URL=None, **(config or {}))
    app.register_blueprint(orders.blueprint)
    app.register_blueprint(pricing.blueprint)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:  # Acme's own error bodies, not trackline's envelope
        return jsonify(error=error.name, status=error.code), error.code

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Any:
        app.logger.exception("order service failed")
        return jsonify(error="something went wrong at Acme"), 500

    if tracked:
        from trackline import TrackingId

        TrackingId(app)
    return app
