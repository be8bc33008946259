"""Background jobs a request accepted: each runs in a thread (a greenlet under gevent) carrying the request's
context (tracking ID, trace), and is tracked until it ends, so that a stopping worker can wait for what it
promised with a 202 (``wait_for_jobs``, called by trackline's gunicorn hooks in server/hooks.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextvars import Context, copy_context
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("trackline.jobs")

#: How often ``wait_for_jobs`` calls its ``tick`` (a worker's heartbeat) while it waits.
TICK_SECONDS = 1.0


@dataclass(frozen=True)
class Job:
    job_id: str
    context: Context  # the context it started in: what its abandonment is logged with
    thread: threading.Thread


_running: dict[str, Job] = {}


def start_job(job_id: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> threading.Thread:
    """Run ``fn(*args, **kwargs)`` in a new thread carrying the current context, tracked as ``job_id`` until it
    ends; an exception it raises is logged with the job's ID."""
    context = copy_context()

    def run() -> None:
        try:
            fn(*args, **kwargs)
        except Exception:
            log.exception("job failed", extra={"job_id": job_id})
        finally:
            _running.pop(job_id, None)

    thread = threading.Thread(target=context.copy().run, args=(run,), daemon=True, name=f"job-{job_id}")
    _running[job_id] = Job(job_id, context, thread)
    thread.start()
    return thread


def running_jobs() -> list[Job]:
    return list(_running.values())


def wait_for_jobs(deadline: float, tick: Callable[[], object] = lambda: None) -> list[Job]:
    """Wait until every running job has ended or ``time.monotonic()`` reaches ``deadline``, calling ``tick``
    about every second; log each job still running then as abandoned (with its ID, in its request's
    context) and return them."""
    if _running:
        log.info("waiting for %d running jobs", len(_running), extra={"jobs": len(_running)})
    while _running and (left := deadline - time.monotonic()) > 0:
        next(iter(_running.values())).thread.join(min(left, TICK_SECONDS))
        tick()
    abandoned = running_jobs()
    for job in abandoned:
        job.context.run(log.error, "job abandoned: its worker stopped before it ended", extra={"job_id": job.job_id})
    return abandoned
