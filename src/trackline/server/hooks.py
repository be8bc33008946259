"""Every gunicorn hook trackline wraps, in one list, in the order gunicorn runs them.

The operator's own hooks (set in gunicorn.yaml) still run: trackline's part first, then theirs (but for
``post_worker_init``'s d., which wraps the app the operator's hook may still look at or replace).

=================  ==========================  ===========================================================
hook               runs in                     trackline's part
=================  ==========================  ===========================================================
``when_ready``     the master, once listening  its main loop lets go of rotated log files (1)
``post_fork``      each worker, after fork     signals that reach it while it boots are held, not lost
                                               (``server/boot_signals.py``)
``post_worker_init`` each worker, app loaded   a. gunicorn's own answers (400, 431, 500) carry an ID and the
                                               envelope, or plain text for an app without it
                                               (``server/error_answers.py``)
                                               b. its heartbeat lets go of rotated log files (1), warns of
                                               slow requests and, when it stops, logs those it will give up
                                               (3); when it stops gracefully it waits for accepted jobs (2)
                                               c. the operator's hook
                                               d. each request's scope is left by ``post_request``, not when
                                               its response closes, so gunicorn's own lines about it after
                                               the response (a traceback) are in it; each request is in the
                                               in-flight registry until then (3)
``post_request``   each worker, per request    the request's scope is left, after the operator's hook (which
                                               runs in it); it leaves the in-flight registry (3)
``worker_abort``   a worker, on the master's   the request that held the loop past ``timeout`` is logged
                   ABRT (``timeout``)          with its stack, and its access line (504, never completed)
                                               written, before the operator's hook (3)
=================  ==========================  ===========================================================

(1) Rotated files. A ``WatchedAppendFileHandler`` notices that its file was renamed or deleted when it next
writes; gunicorn's master keeps app.log and access.log open from its logging setup and never writes them, and
an idle worker writes nothing either, so deleting or compressing a rotated file would not free its space.
Each process therefore calls ``release_moved_files`` about once a second from a loop gunicorn already runs:
the master's main loop (``Arbiter.run`` waits at most 1 s for a signal, then calls ``murder_workers``, so it
is wrapped from ``when_ready``, the first hook that has the arbiter), and a worker's heartbeat (``notify``,
every second while a gevent worker idles and while it drains, before each request in other workers). No
thread (one in the master would be forked into every worker, holding whatever lock it held then) and no timer
signal (it would interrupt system calls of the app).

(2) Accepted jobs. A worker that stops gracefully (TERM, a HUP's replacement, ``max_requests``) returns from its
``run`` once its in-flight requests are done; the process then exits and the jobs still running in it
(trackline.background) are gone. Its ``run`` is wrapped to wait for them after that, heartbeat going, until
``graceful_timeout`` after the worker noticed the stop, and to log each job it had to abandon. Not in
``worker_exit``: gunicorn closes the worker's heartbeat file before it calls that hook, and the master calls it
too, for a worker that vanished. A worker that exits at once (QUIT, INT, a timeout's ABRT) logs its running
jobs as abandoned without waiting.

(3) Requests in flight (``server/inflight.py``, docs/forensics.md). Each request is registered before the app
sees it and dropped in ``post_request``. The heartbeat logs one WARNING for a request running past
``TRACKLINE_SLOW_REQUEST_SECONDS``. ``worker_abort`` runs inside gunicorn's ABRT handler, in the greenlet that
held the CPU: the frame the signal interrupted is the stuck stack. A stopping worker logs each request still
running ``STOP_MARGIN_SECONDS`` before ``graceful_timeout`` (after it noticed the stop), as it does its jobs:
after that, gunicorn kills their greenlets, or the master SIGKILLs the process, and neither leaves a line.
"""

from __future__ import annotations

import sys
import time
from types import FrameType
from typing import Any

from gunicorn.config import Config

from trackline.appconfig import AppConfig
from trackline.background import wait_for_jobs
from trackline.logs.handlers import release_moved_files
from trackline.server import error_answers, inflight
from trackline.server.boot_signals import hold_signals_while_booting
from trackline.wsgi import SERVER_LEAVES_KEY, StartResponse

#: How often each process looks for renamed or deleted log files.
RELEASE_SECONDS = 1.0

#: Taken off ``graceful_timeout`` for the job wait: a worker notices a stop up to a second late (its loop
#: sleeps 1 s), and the lines of abandoned jobs must be out before the master's SIGKILL at ``graceful_timeout``.
STOP_MARGIN_SECONDS = 2.0


def install_hooks(cfg: Config, app: AppConfig, envelope: bool = True) -> None:
    """Wrap ``cfg``'s hooks (the operator's, or gunicorn's no-ops) as the table above says; ``app`` is app.yaml's
    (the policy of gunicorn's own answers, the slow-request threshold); ``envelope``: whether the served app
    answers errors with the envelope (the demo, ``TRACKLINE_ERROR_ENVELOPE``), so gunicorn's answers do too."""
    when_ready, post_fork = cfg.when_ready, cfg.post_fork
    post_worker_init, post_request, worker_abort = cfg.post_worker_init, cfg.post_request, cfg.worker_abort

    def trackline_when_ready(arbiter: Any) -> None:
        _release_files_from_main_loop(arbiter)
        when_ready(arbiter)

    def trackline_post_fork(arbiter: Any, worker: Any) -> None:
        hold_signals_while_booting(worker)
        post_fork(arbiter, worker)

    def trackline_post_worker_init(worker: Any) -> None:
        error_answers.answer_as_trackline(worker, app.policy, envelope)
        inflight.slow_seconds = app.slow_request_seconds
        _release_files_and_wait_for_jobs(worker)
        post_worker_init(worker)
        _leave_scopes_in_post_request(worker)

    def trackline_post_request(worker: Any, req: Any, environ: dict[str, Any], resp: Any) -> None:
        try:
            post_request(worker, req, environ, resp)
        except Exception:
            worker.log.exception("Exception in post_request hook")  # gunicorn's words, while the ID is current
        finally:
            inflight.finish(environ)
            error_answers.leave_request_scope(req, environ)

    def trackline_worker_abort(worker: Any) -> None:
        try:
            inflight.report_abort(worker, worker.cfg.timeout, _interrupted_frame())
        except Exception:
            worker.log.exception("could not log the requests in flight on the aborted worker")
        worker_abort(worker)

    cfg.set("when_ready", trackline_when_ready)
    cfg.set("post_fork", trackline_post_fork)
    cfg.set("post_worker_init", trackline_post_worker_init)
    cfg.set("post_request", trackline_post_request)
    cfg.set("worker_abort", trackline_worker_abort)


def _interrupted_frame() -> FrameType | None:
    """In gunicorn's ABRT handler (``Worker.handle_abort``, which calls ``worker_abort``): the frame the signal
    interrupted, where the code that held the CPU was."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_name != "handle_abort":
        frame = frame.f_back  # type: ignore[assignment]
    return frame.f_back if frame is not None else None


def _leave_scopes_in_post_request(worker: Any) -> None:
    """Tell the tracking middleware, in each request's environ, that ``post_request`` leaves its scope; register
    the request as in flight until then."""
    app = worker.wsgi

    def app_whose_scope_the_server_leaves(environ: dict[str, Any], start_response: StartResponse) -> Any:
        environ[SERVER_LEAVES_KEY] = True
        inflight.start(environ)
        return app(environ, start_response)

    worker.wsgi = app_whose_scope_the_server_leaves


def _release_files_from_main_loop(arbiter: Any) -> None:
    murder_workers = arbiter.murder_workers

    def murder_workers_then_release_files() -> None:
        murder_workers()
        release_moved_files()

    arbiter.murder_workers = murder_workers_then_release_files


def _release_files_and_wait_for_jobs(worker: Any) -> None:
    """(1) and (3) on the worker's heartbeat, and (2) after its ``run`` returns."""
    notify, run = worker.notify, worker.run
    next_release = 0.0
    stop_noticed: float | None = None
    requests_given_up = False

    def notify_then_release_files() -> None:
        nonlocal next_release, stop_noticed, requests_given_up
        notify()
        now = time.monotonic()
        if not worker.alive and stop_noticed is None:
            stop_noticed = now
        if now >= next_release:
            next_release = now + RELEASE_SECONDS
            release_moved_files()
            inflight.check_slow(worker.log.error_log, now)
        if (stop_noticed is not None and not requests_given_up
                and now >= stop_noticed + worker.cfg.graceful_timeout - STOP_MARGIN_SECONDS):
            requests_given_up = True
            inflight.report_abandoned(worker, worker.cfg.graceful_timeout)

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
