"""The demo API under ``/api``: the blog post's routes and the routes whose work leaves the request."""

from trackline.api import common, jobs

blueprints = (common.blueprint, jobs.blueprint)

__all__ = ["blueprints"]
