"""``POST /api/jobs`` and ``GET /api/jobs/<id>`` on Celery, when app.yaml sets ``JOBS_BROKER_URL``.

Publishing gives up after ``JOBS_PUBLISH_TIMEOUT`` seconds (default 2) and answers 503: a broker that is down
or silent never hangs the request. The broker URL is also the result backend that the job states come from.
"""

from __future__ import annotations

import logging
import uuid
from http import HTTPStatus

from celery import Celery
from flask import current_app
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from trackline.responses import Fail, JsonResponse, Success

log = logging.getLogger("trackline.jobs")

DEFAULT_PUBLISH_TIMEOUT = 2.0

#: What a broker (kombu wraps its errors) or a result backend (redis-py's own) that is down or silent raises.
_BROKER_ERRORS = (OperationalError, RedisConnectionError, RedisTimeoutError, OSError)


def _celery() -> Celery:
    """The demo Celery app pointed at this Flask app's ``JOBS_BROKER_URL`` (configured on first use)."""
    app: Celery | None = current_app.extensions.get("trackline.celery")
    if app is None:
        from trackline.worker.demo import app as demo

        app = demo
        url = current_app.config["JOBS_BROKER_URL"]
        timeout = float(current_app.config.get("JOBS_PUBLISH_TIMEOUT", DEFAULT_PUBLISH_TIMEOUT))
        app.conf.update(
            broker_url=url, result_backend=url, broker_connection_timeout=timeout,
            broker_transport_options={"socket_timeout": timeout, "socket_connect_timeout": timeout},
            redis_socket_timeout=timeout, redis_socket_connect_timeout=timeout,
        )
        current_app.extensions["trackline.celery"] = app
    return app


def queue_job(seconds: float) -> JsonResponse:
    """Queue the demo job (its task ID is the job ID) and answer 202, or 503 if the broker cannot take it."""
    job_id = uuid.uuid4().hex
    app = _celery()
    try:
        app.tasks["trackline.jobs.run"].apply_async((job_id, seconds), task_id=job_id, retry=False)
    except _BROKER_ERRORS as exc:
        log.error("could not queue the job: broker unavailable", extra={"job_id": job_id, "error": str(exc)})
        return Fail(msg="job queue unavailable, try again later", code=HTTPStatus.SERVICE_UNAVAILABLE)
    log.info("job queued", extra={"job_id": job_id})
    return JsonResponse(data={"job_id": job_id}, code=HTTPStatus.ACCEPTED, msg="job accepted")


def job_state(job_id: str) -> JsonResponse:
    """The job's Celery state (``PENDING`` for one that is queued or unknown, ``STARTED``, ``SUCCESS``, ...)."""
    if not current_app.config.get("JOBS_BROKER_URL"):
        return Fail(msg="job states are kept only for jobs queued on Celery (JOBS_BROKER_URL)",
                    code=HTTPStatus.NOT_FOUND)
    app = _celery()
    try:
        state = app.AsyncResult(job_id).state
    except _BROKER_ERRORS as exc:
        log.error("could not read the job state: result backend unavailable", extra={"error": str(exc)})
        return Fail(msg="job states unavailable, try again later", code=HTTPStatus.SERVICE_UNAVAILABLE)
    return Success(data={"job_id": job_id, "state": state})
