"""The demo API's Celery app: ``POST /api/jobs`` queues ``trackline.jobs.run`` here when ``JOBS_BROKER_URL``
is set in app.yaml, and ``trackline worker`` runs it by default (worker.yaml's ``celery_app``).

The broker and result backend are set by whoever uses the app: the web side from app.yaml, the worker from
worker.yaml.
"""

from __future__ import annotations

import logging
import time

from celery import Celery

from trackline.celery import instrument

log = logging.getLogger("trackline.jobs")

app = instrument(Celery("trackline.jobs"))
app.conf.update(task_track_started=True, task_acks_late=True, task_reject_on_worker_lost=True)


@app.task(name="trackline.jobs.run")
def run(job_id: str, seconds: float) -> str:
    """The demo job: works ``seconds``, logging its start and end (with the request's tracking ID)."""
    log.info("job started", extra={"job_id": job_id})
    time.sleep(seconds)
    log.info("job done", extra={"job_id": job_id})
    return job_id
