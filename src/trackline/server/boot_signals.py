"""Signals that reach a worker while it boots are held until it can act on them, not lost.

From the fork until the worker's ``init_signals`` (setting up its environment and pipes, and gevent's patching
come in between), a gunicorn worker still runs the master's signal handlers, which queue a signal in the
worker's copy of the master's queue, where nothing reads it. A TERM sent then (``systemctl stop`` just after
a start, a reload or stop during a ``max_requests`` restart) is lost, and the master waits
``graceful_timeout`` before it kills the worker. Blocking the master's signals for workers in ``post_fork``
and unblocking them as soon as ``init_signals`` has installed the worker's own handlers delivers them then.
The operator's ``post_fork`` hook runs with them blocked, and so does any process it starts (a signal mask
is inherited across fork and exec); the app is loaded with nothing blocked.
"""

from __future__ import annotations

import signal
from typing import Any

#: What gunicorn's master sends a worker to stop gracefully, stop now or reopen log files. Not SIGABRT: on a
#: boot that outlasts ``timeout`` the master sends ABRT, then KILL, and the worker's boot may be what hangs.
HELD = frozenset({signal.SIGTERM, signal.SIGQUIT, signal.SIGINT, signal.SIGUSR1})


def hold_signals_while_booting(worker: Any) -> None:
    """In a new worker (``post_fork``): block ``HELD`` until its ``init_signals`` has installed its handlers."""
    signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
    init_signals = worker.init_signals

    def init_signals_then_release() -> None:
        init_signals()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD)  # a held signal's handler runs here

    worker.init_signals = init_signals_then_release
