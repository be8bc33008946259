"""trackline: every request carries a tracking ID and a W3C trace into its response headers and every log line.

The public API is ``__all__``: the Flask extension and the WSGI middleware, the current request's ID and span,
the logging pieces ``logging.yaml`` names, and ``propagation`` (threads, greenlets, outgoing calls). Names are
loaded on first use: ``import trackline`` imports nothing more (the ``trackline`` command starts at once).
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ``trackline --version`` needs none of it
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "JsonFormatter",
    "TrackingId",
    "TrackingIdFilter",
    "TrackingMiddleware",
    "WatchedAppendFileHandler",
    "app_settings",
    "configure_logging",
    "get_trace",
    "get_tracking_id",
    "propagation",
]

#: Where each lazily loaded name lives.
_HOMES = {
    "JsonFormatter": "trackline.logs",
    "TrackingId": "trackline.tracking",
    "TrackingIdFilter": "trackline.logs",
    "TrackingMiddleware": "trackline.tracking",
    "WatchedAppendFileHandler": "trackline.logs",
    "app_settings": "trackline.server.loading",
    "configure_logging": "trackline.logs",
    "get_trace": "trackline.context",
    "get_tracking_id": "trackline.context",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    if name == "propagation":
        return importlib.import_module("trackline.propagation")
    if name == "create_app":
        import warnings

        warnings.warn("trackline.create_app is the demo's factory and moved to trackline.demo.create_app; "
                      "the old name goes in the next release", DeprecationWarning, stacklevel=2)
        from trackline.demo import create_app

        return create_app
    raise AttributeError(f"module 'trackline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
