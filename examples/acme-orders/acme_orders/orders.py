"""Orders: create (confirmed in a background thread), look up, quote (an outgoing call), export (streamed)."""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, abort, current_app, request, stream_with_context

from trackline import propagation

log = logging.getLogger("acme.orders")

blueprint = Blueprint("orders", __name__, url_prefix="/orders")

#: Orders in memory, one store per worker process (a real app keeps them in its database).
_orders: dict[int, dict[str, Any]] = {}
_ids = itertools.count(1)
_lock = threading.Lock()


def _confirm(order_id: int) -> None:
    """Work that goes on after the answer: its lines carry the request's tracking ID (propagation)."""
    time.sleep(0.05)
    with _lock:
        _orders[order_id]["state"] = "confirmed"
    log.info("order confirmed", extra={"order_id": order_id})


@blueprint.post("")
def create_order() -> Any:
    item = (request.get_json(silent=True) or {}).get("item", "widget")
    with _lock:
        order_id = next(_ids)
        _orders[order_id] = {"id": order_id, "item": item, "state": "new"}
    log.info("order created", extra={"order_id": order_id, "item": item})
    propagation.start_thread(_confirm, order_id)
    return {"id": order_id, "state": "new"}, 201


@blueprint.get("/<int:order_id>")
def get_order(order_id: int) -> Any:
    with _lock:
        order = _orders.get(order_id)
    if order is None:
        log.info("no such order", extra={"order_id": order_id})
        abort(404)
    return dict(order)


@blueprint.get("/<int:order_id>/quote")
def quote(order_id: int) -> Any:
    """Ask the pricing service (``PRICING_URL``, else this app's own ``/prices``) with the request's ID."""
    base = current_app.config["PRICING_URL"] or request.host_url.rstrip("/")
    with propagation.urlopen(f"{base}/prices/{order_id}", timeout=5) as answer:
        price = json.load(answer)
    log.info("quoted", extra={"order_id": order_id, "price": price["price"]})
    return {"id": order_id, **price}


@blueprint.get("/export")
def export() -> Response:
    """A streamed CSV: rows are produced (and logged) while the body is being sent."""

    def rows() -> Iterator[str]:
        yield "id,item,state\n"
        with _lock:
            snapshot = [dict(order) for order in _orders.values()]
        for order in snapshot:
            yield f"{order['id']},{order['item']},{order['state']}\n"
        log.info("export sent", extra={"rows": len(snapshot)})

    return Response(stream_with_context(rows()), mimetype="text/csv")


@blueprint.get("/fail")
def fail() -> Any:
    raise RuntimeError("the order database is on fire")
