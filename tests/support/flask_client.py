"""Flask's test client, reading and closing every response as a WSGI server does."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient


class ServerLikeClient(FlaskClient):
    """A test client that reads and closes every response, as a WSGI server does."""

    def open(self, *args: Any, buffered: bool = True, **kwargs: Any) -> Any:
        return super().open(*args, buffered=buffered, **kwargs)


def client_for(app: Flask) -> FlaskClient:
    app.test_client_class = ServerLikeClient
    return app.test_client()
