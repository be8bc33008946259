"""Pricing: the service ``/orders/<id>/quote`` calls (here the same app; ``PRICING_URL`` points elsewhere)."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint

log = logging.getLogger("acme.pricing")

blueprint = Blueprint("pricing", __name__, url_prefix="/prices")


@blueprint.get("/<int:order_id>")
def price(order_id: int) -> Any:
    time.sleep(0.02)  # a price lookup
    amount = round(9.99 + order_id, 2)
    log.info("priced", extra={"order_id": order_id, "price": amount})
    return {"price": amount, "currency": "EUR"}
