"""``instrument(client)``: a ``requests.Session``, ``httpx.Client`` or ``httpx.AsyncClient`` that sends the tracking
ID and a child span of the current trace with every request it sends (each redirect hop too).

The headers come from the context current when each request is sent, not when the client was made, so one
client can serve every request of a process. ``requests`` and ``httpx`` are imported by the caller that made
the client, never here: trackline works without either installed (extras ``trackline[requests]``,
``trackline[httpx]``).
"""

from __future__ import annotations

import sys
from typing import Any, TypeVar

from trackline.propagation import outgoing_call

C = TypeVar("C")

_MARK = "_trackline_instrumented"


def instrument(client: C) -> C:
    """``client``, changed to add the headers at send time (nothing outside a request; calls are logged by
    ``outgoing_call``). Instrumenting a client twice changes nothing more."""
    if getattr(client, _MARK, False):
        return client
    if _is_instance(client, "requests", "Session"):
        _instrument_requests(client)
    elif _is_instance(client, "httpx", "AsyncClient"):
        _add_request_hook(client, _put_async)
    elif _is_instance(client, "httpx", "Client"):
        _add_request_hook(client, _put)
    else:
        raise TypeError(f"cannot instrument {type(client).__name__}: expected a requests.Session, an httpx.Client "
                        "or an httpx.AsyncClient")
    setattr(client, _MARK, True)
    return client


def _is_instance(client: Any, module: str, name: str) -> bool:
    """``isinstance(client, module.name)`` if ``module`` is imported at all (a client of it exists only if so)."""
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(client, getattr(loaded, name))


def _instrument_requests(session: Any) -> None:
    """Wrap ``session.send``, which ``Session.request`` and each redirect hop go through."""
    send = session.send

    def send_in_context(request: Any, **kwargs: Any) -> Any:
        outgoing_call(request.headers, request.method or "GET", request.url)
        return send(request, **kwargs)

    session.send = send_in_context


def _put(request: Any) -> None:
    """httpx request hook (called for each hop, redirects included)."""
    outgoing_call(request.headers, request.method, str(request.url))


async def _put_async(request: Any) -> None:
    _put(request)


def _add_request_hook(client: Any, hook: Any) -> None:
    hooks = client.event_hooks
    client.event_hooks = {**hooks, "request": [*hooks.get("request", ()), hook]}
