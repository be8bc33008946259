"""What every trackline process does besides answering: let go of rotated log files, and finish accepted jobs.

Rotated files. A ``WatchedAppendFileHandler`` notices that its file was renamed or deleted when it next
writes; gunicorn's master keeps app.log and access.log open from its logging setup and never writes them, and
an idle worker writes nothing either, so deleting or compressing a rotated file would not free its space.
Each process therefore calls ``release_moved_files`` about once a second from a loop gunicorn already runs:
the master's main loop (``Arbiter.run`` waits at most 1 s for a signal, then calls ``murder_workers``, so it
is wrapped from ``when_ready``, the first hook that has the arbiter), and a worker's heartbeat (``notify``,
every second while a gevent worker idles and while it drains, before each request in other workers; wrapped
from ``post_worker_init``). No thread (one in the master would be forked into every worker, holding whatever
lock it held then) and no timer signal (it would interrupt system calls of the app).

Accepted jobs. A worker that stops gracefully (TERM, a HUP's replacement, ``max_requests``) returns from its
``run`` once its in-flight requests are done; the process then exits and the jobs still running in it
(trackline.background) are gone. Its ``run`` is wrapped (from ``post_worker_init``) to wait for them after
that, heartbeat going, until ``graceful_timeout`` after the worker noticed the stop, and to log each job it
had to abandon. Not in ``worker_exit``: gunicorn closes the worker's heartbeat file before it calls that hook,
and the master calls it too, for a worker that vanished. A worker that exits at once (QUIT, INT, a timeout's
ABRT) logs its running jobs as abandoned without waiting.
"""

from __future__ import annotations

import time
from typing import Any

from gunicorn.config import Config

from trackline.background import wait_for_jobs
from trackline.logs.handlers import release_moved_files

#: How often each process looks for renamed or deleted log files.
RELEASE_SECONDS = 1.0

#: Taken off ``graceful_timeout`` for the job wait: a worker notices a stop up to a second late (its loop
#: sleeps 1 s), and the lines of abandoned jobs must be out before the master's SIGKILL at ``graceful_timeout``.
STOP_MARGIN_SECONDS = 2.0


def add_upkeep(cfg: Config) -> None:
    """Wrap ``cfg``'s ``when_ready`` and ``post_worker_init`` hooks (the operator's, or gunicorn's no-ops)."""
    when_ready, post_worker_init = cfg.when_ready, cfg.post_worker_init

    def release_files_then_when_ready(arbiter: Any) -> None:
        murder_workers = arbiter.murder_workers

        def murder_workers_then_release_files() -> None:
            murder_workers()
            release_moved_files()

        arbiter.murder_workers = murder_workers_then_release_files
        when_ready(arbiter)

    def upkeep_then_post_worker_init(worker: Any) -> None:
        _add_worker_upkeep(worker)
        post_worker_init(worker)

    cfg.set("when_ready", release_files_then_when_ready)
    cfg.set("post_worker_init", upkeep_then_post_worker_init)


def _add_worker_upkeep(worker: Any) -> None:
    notify, run = worker.notify, worker.run
    next_release = 0.0
    stop_noticed: float | None = None

    def notify_then_release_files() -> None:
        nonlocal next_release, stop_noticed
        notify()
        now = time.monotonic()
        if not worker.alive and stop_noticed is None:
            stop_noticed = now
        if now >= next_release:
            next_release = now + RELEASE_SECONDS
            release_moved_files()

    def run_then_wait_for_jobs() -> None:
        try:
            run()
        except BaseException:
            wait_for_jobs(deadline=0.0)  # stopping at once: say which jobs are lost
            raise
        stopped = stop_noticed if stop_noticed is not None else time.monotonic()
        wait_for_jobs(stopped + worker.cfg.graceful_timeout - STOP_MARGIN_SECONDS, tick=worker.notify)

    worker.notify = notify_then_release_files
    worker.run = run_then_wait_for_jobs
