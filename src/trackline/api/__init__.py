"""The demo API: the blog post's routes under ``/api``."""

from trackline.api.common import blueprint

__all__ = ["blueprint"]
