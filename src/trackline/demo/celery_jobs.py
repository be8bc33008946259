"""``POST /api/jobs`` and ``GET /api/jobs/<id>`` on Celery, when app.yaml sets ``JOBS_BROKER_URL``.

Publishing gives up after ``JOBS_PUBLISH_TIMEOUT`` seconds (default 2) and answers 503: a broker that is down
or silent never hangs the request. The job states are read from the same URL, as the worker's result backend.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

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


@dataclass(frozen=True)
class _Jobs:
    """The demo Celery app for publishing (no result backend: a publisher that subscribes to every job's result
    would hold one subscription per job, and retry a dead backend for 20 s), and the backend job states are
    read from, with no retries."""

    app: Celery
    states: Any


def _jobs() -> _Jobs:
    """The demo Celery app pointed at this Flask app's ``JOBS_BROKER_URL`` (configured on first use)."""
    jobs: _Jobs | None = current_app.extensions.get("trackline.celery")
    if jobs is None:
        from celery.app.backends import by_url

        from trackline.demo.tasks import app

        url = current_app.config["JOBS_BROKER_URL"]
        timeout = float(current_app.config.get("JOBS_PUBLISH_TIMEOUT", DEFAULT_PUBLISH_TIMEOUT))
        app.conf.update(
            broker_url=url, result_backend=None, broker_connection_timeout=timeout,
            broker_transport_options={"socket_timeout": timeout, "socket_connect_timeout": timeout, "max_retries": 0},
            redis_socket_timeout=timeout, redis_socket_connect_timeout=timeout,
            result_backend_transport_options={"retry_policy": {"max_retries": 0}},
        )
        backend_class, backend_url = by_url(url, app.loader)
        jobs = current_app.extensions["trackline.celery"] = _Jobs(app, backend_class(app=app, url=backend_url))
    return jobs


def queue_job(seconds: float) -> JsonResponse:
    """Queue the demo job (its task ID is the job ID) and answer 202, or 503 if the broker cannot take it."""
    job_id = uuid.uuid4().hex
    try:
        _jobs().app.tasks["trackline.jobs.run"].apply_async((job_id, seconds), task_id=job_id, retry=False)
    except _BROKER_ERRORS as exc:
        log.error("could not queue the job: broker unavailable", extra={"job_id": job_id, "error": str(exc)})
        return Fail(msg="job queue unavailable, try again later", code=HTTPStatus.SERVICE_UNAVAILABLE)
    log.info("job queued", extra={"job_id": job_id})
    return JsonResponse(data={"job_id": job_id}, code=HTTPStatus.ACCEPTED, msg="job accepted")


def job_state(job_id: str) -> JsonResponse:
    """The job's Celery state (``PENDING`` for one that is queued or unknown, ``STARTED``, ``SUCCESS``, ...)."""
    try:
        state = _jobs().states.get_task_meta(job_id)["status"]
    except _BROKER_ERRORS as exc:
        log.error("could not read the job state: result backend unavailable", extra={"error": str(exc)})
        return Fail(msg="job states unavailable, try again later", code=HTTPStatus.SERVICE_UNAVAILABLE)
    return Success(data={"job_id": job_id, "state": state})
