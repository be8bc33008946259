"""Which gevent event loop, if any, is sure to run a callback soon after the current code yields.

Logging work handed to that loop with ``loop.run_callback`` runs at the end of the loop's current iteration,
after every request greenlet that was ready has had its turn, so a gevent worker under load formats and writes
the lines of many requests at once (see docs/benchmarks.md). Anywhere else (gunicorn's master, a sync worker,
a real thread, a script, or the main greenlet, which may never yield again) there is no such loop and
logging stays synchronous.
"""

from __future__ import annotations

import sys
from typing import Any

from greenlet import getcurrent


def running_loop() -> Any | None:
    """The loop of the gevent hub running the current greenlet (or running now: its callbacks), or ``None``."""
    hub_module = sys.modules.get("gevent.hub")
    if hub_module is None:  # gevent never imported: nothing to ask
        return None
    current = getcurrent()
    if isinstance(current, hub_module.Hub):
        return current.loop
    parent = current.parent  # a greenlet that gevent spawned runs under its thread's hub
    return parent.loop if isinstance(parent, hub_module.Hub) else None
