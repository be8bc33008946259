"""The post's ``handles`` layer: where ``/api/users`` gets its data (patch ``get_users`` in tests)."""

from __future__ import annotations

import time
from typing import Any

#: Simulated backend latency: the route is the slow one that load tests run concurrently.
LATENCY_SECONDS = 0.1


def get_users() -> list[dict[str, Any]]:
    time.sleep(LATENCY_SECONDS)  # cooperative under gevent's monkey-patching
    return [{"id": 1, "name": "Alice"}, {"id": 2, "name": "Bob"}]
