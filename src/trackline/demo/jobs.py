"""Demo routes whose work leaves the request: a background job and a call to a downstream service."""

from __future__ import annotations

import logging
import time
import uuid
from http import HTTPStatus
from typing import Any

from flask import Blueprint, current_app, request

from trackline import background, propagation
from trackline.responses import ArgumentInvalid, Fail, JsonResponse, Success

log = logging.getLogger("trackline.jobs")

blueprint = Blueprint("job_apis", __name__, url_prefix="/api")

#: How long the demo job works after its request has returned.
JOB_SECONDS = 0.2
DOWNSTREAM_TIMEOUT = 5.0
#: Most downstream calls one ``GET /api/relay?calls=N`` makes (each its own child span).
MAX_CALLS = 10


def _run_job(job_id: str) -> None:
    log.info("job started", extra={"job_id": job_id})
    time.sleep(JOB_SECONDS)
    log.info("job done", extra={"job_id": job_id})


@blueprint.post("/jobs")
def start_job() -> JsonResponse:
    """Start a background job and answer 202 at once; its log lines carry this request's tracking ID. On Celery
    when app.yaml sets JOBS_BROKER_URL; else in this worker, which waits for it when it stops (or logs it as
    abandoned)."""
    if current_app.config.get("JOBS_BROKER_URL"):
        from trackline.demo import celery_jobs  # Celery only where app.yaml asks for it

        return celery_jobs.queue_job(JOB_SECONDS)
    job_id = uuid.uuid4().hex
    background.start_job(job_id, _run_job, job_id)
    return JsonResponse(data={"job_id": job_id}, code=HTTPStatus.ACCEPTED, msg="job accepted")


@blueprint.get("/jobs/<job_id>")
def job_state(job_id: str) -> JsonResponse:
    """The state of a job queued on Celery."""
    if not current_app.config.get("JOBS_BROKER_URL"):
        return Fail(msg="job states are kept only for jobs queued on Celery (JOBS_BROKER_URL)",
                    code=HTTPStatus.NOT_FOUND)
    from trackline.demo import celery_jobs

    return celery_jobs.job_state(job_id)


_session: Any = None


def _downstream() -> Any:
    """One ``requests.Session`` for the process (its connection pool), instrumented; ``None`` without requests."""
    global _session
    if _session is None:
        try:
            import requests
        except ImportError:
            return None
        _session = propagation.instrument(requests.Session())
    return _session


@blueprint.get("/relay")
def relay() -> JsonResponse:
    """Call ``DOWNSTREAM_URL``/api/health (with ``requests``) ``calls`` times (default 1), each call a child span
    of this request's trace; answer with the last call's status and body."""
    calls = request.args.get("calls", "1")
    if not (calls.isdigit() and 1 <= int(calls) <= MAX_CALLS):
        return ArgumentInvalid(msg=f"calls: must be a whole number from 1 to {MAX_CALLS}")
    base = current_app.config.get("DOWNSTREAM_URL")
    if not base:
        return Fail(msg="DOWNSTREAM_URL is not configured", code=HTTPStatus.SERVICE_UNAVAILABLE)
    session = _downstream()
    if session is None:
        return Fail(msg="GET /api/relay needs requests: pip install 'trackline[requests]'",
                    code=HTTPStatus.SERVICE_UNAVAILABLE)
    url = f"{base.rstrip('/')}/api/health"
    for _ in range(int(calls)):
        try:
            resp = session.get(url, timeout=DOWNSTREAM_TIMEOUT)
            body, status = resp.json(), resp.status_code
        except (OSError, ValueError) as exc:  # requests' errors are OSErrors, a bad JSON body a ValueError
            log.error("downstream call failed: %s", url, extra={"error": str(exc)})
            return Fail(msg="downstream call failed", code=HTTPStatus.BAD_GATEWAY)
        log.info("downstream answered", extra={"downstream_url": url, "downstream_status": status})
    return Success(data={"downstream_status": status, "downstream": body})
