"""Run logging work once the current gevent greenlet yields, when there is a gevent hub to run it.

A function started this way (``gevent.spawn_raw``) runs on the hub's next loop turn, after every request
greenlet that was ready has had its turn, so a gevent worker under load writes the lines of many requests at
once (see docs/benchmarks.md). It runs in a greenlet of its own, so it may wait for a lock that a real thread
holds. Where no hub runs the current code (gunicorn's master, a sync worker, a real thread, a script, or a
thread's main greenlet, which may never yield again) nothing is started and the caller works at once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from greenlet import getcurrent


def run_after_yield(function: Callable[[], object]) -> bool:
    """Start ``function`` in a new greenlet on the hub's next loop turn; ``False`` (nothing started) off a hub."""
    hub_module = sys.modules.get("gevent.hub")
    if hub_module is None:  # gevent never imported: no hub anywhere
        return False
    current = getcurrent()
    if not isinstance(current, hub_module.Hub) and not isinstance(current.parent, hub_module.Hub):
        return False  # not a greenlet the hub runs (gevent.spawn's greenlets are the hub's children)
    hub_module.spawn_raw(function)
    return True
