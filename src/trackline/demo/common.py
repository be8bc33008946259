"""The post's routes: health, users, names, item and a route that fails on purpose."""

from __future__ import annotations

import logging
from datetime import datetime

from flask import Blueprint

from trackline.demo import users
from trackline.responses import Success

log = logging.getLogger("trackline.api")

blueprint = Blueprint("common_apis", __name__, url_prefix="/api")


@blueprint.get("/health")
def health_check() -> Success:
    log.info("Health check")
    return Success(data="OK")


@blueprint.get("/users")
def get_users() -> Success:
    return Success(data=users.get_users())


@blueprint.get("/names")
def get_names() -> Success:
    return Success(data=["Alice", "Bob", "Charlie"])


@blueprint.get("/item")
def get_item() -> Success:
    return Success(data={"id": 101, "name": "Sample Item", "price": 29.99, "now": datetime.now().astimezone()})


@blueprint.get("/error")
def get_error() -> Success:
    raise RuntimeError("This is a test exception")
