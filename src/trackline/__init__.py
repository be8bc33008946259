"""trackline: every request carries a tracking ID into its response headers and every log line.

``get_tracking_id`` is importable without Flask; ``TrackingId`` and ``create_app`` load Flask on first use.
"""

from __future__ import annotations

from typing import Any

from trackline.context import get_tracking_id

__all__ = ["TrackingId", "app_settings", "create_app", "get_tracking_id"]


def __getattr__(name: str) -> Any:
    if name == "TrackingId":
        from trackline.tracking import TrackingId

        return TrackingId
    if name == "app_settings":
        from trackline.server.loading import app_settings

        return app_settings
    if name == "create_app":
        from trackline.app import create_app

        return create_app
    raise AttributeError(f"module 'trackline' has no attribute {name!r}")
