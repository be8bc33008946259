"""Two services, A's /api/relay calling B (DOWNSTREAM_URL): the call a test makes A relay to B."""

from __future__ import annotations

from support.server import Server

#: B's answer to the call A relays (GET /api/health), inside A's answer.
HEALTH = {"code": 200, "msg": "GET /api/health success", "data": "OK"}


def relay(a: Server, headers: dict[str, str], calls: int = 1) -> str:
    """GET A/api/relay?calls=N (200, with B's health answer inside); the tracking ID A answered with."""
    response = a.get(f"/api/relay?calls={calls}", headers=headers)
    assert response.status == 200, response.body
    assert response.json()["data"] == {"downstream_status": 200, "downstream": HEALTH}
    return response.headers["X-Tracking-ID"]
