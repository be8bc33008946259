"""Which gevent hub, if any, runs the current code, so that logging work can wait for its next loop turn.

A function started with ``gevent.spawn_raw`` runs on the hub's next loop turn, after every request greenlet
that was ready has had its turn, so a gevent worker under load writes the lines of many requests at once
(see docs/benchmarks.md). It runs in a greenlet of its own, so it may wait for a lock that a real thread
holds. Where no hub runs the current code (gunicorn's master, a sync worker, a real thread, a script, or a
thread's main greenlet, which may never yield again) the caller works at once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from greenlet import getcurrent


def running_hub() -> Any | None:
    """The live gevent hub running the current greenlet (or running now: its callbacks), or ``None``."""
    hub_module = sys.modules.get("gevent.hub")
    if hub_module is None:  # gevent never imported: no hub anywhere
        return None
    current = getcurrent()
    hub = current if isinstance(current, hub_module.Hub) else current.parent  # spawned greenlets: the hub's children
    if not isinstance(hub, hub_module.Hub) or hub.loop is None:  # not under a hub, or a destroyed one
        return None
    return hub


def run_on_next_turn(function: Callable[[], object]) -> None:
    """Start ``function`` in a new greenlet on the next loop turn of ``running_hub()`` (which must not be None)."""
    sys.modules["gevent.hub"].spawn_raw(function)  # spawn_raw uses this thread's hub: the running one
