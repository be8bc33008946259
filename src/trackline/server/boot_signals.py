"""Signals that reach a worker while it boots are held until it can act on them, not lost.

From the fork until the worker's ``init_signals`` (gevent's patching and the app's import come in between),
a gunicorn worker still runs the master's signal handlers, which queue a signal in the worker's copy of the
master's queue, where nothing reads it. A TERM sent then (``systemctl stop`` just after a start, a reload or
stop during a ``max_requests`` restart) is lost, and the master waits ``graceful_timeout`` before it kills
the worker. Blocking the master's signals for workers in ``post_fork`` and unblocking them in
``post_worker_init`` delivers them once the worker's own handlers are in place.
"""

from __future__ import annotations

import signal
from typing import Any

from gunicorn.config import Config

#: What gunicorn's master sends a worker to stop gracefully, stop now or reopen log files. Not SIGABRT: on a
#: boot that outlasts ``timeout`` the master sends ABRT, then KILL, and the worker's import may be what hangs.
HELD = frozenset({signal.SIGTERM, signal.SIGQUIT, signal.SIGINT, signal.SIGUSR1})


def hold_signals_while_booting(cfg: Config) -> None:
    """Wrap ``cfg``'s ``post_fork`` and ``post_worker_init`` hooks (the operator's, or gunicorn's no-ops)."""
    post_fork, post_worker_init = cfg.post_fork, cfg.post_worker_init

    def hold_then_post_fork(arbiter: Any, worker: Any) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
        post_fork(arbiter, worker)

    def release_then_post_worker_init(worker: Any) -> None:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD)  # a held signal's handler runs here
        post_worker_init(worker)

    cfg.set("post_fork", hold_then_post_fork)
    cfg.set("post_worker_init", release_then_post_worker_init)
