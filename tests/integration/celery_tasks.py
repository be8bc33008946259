"""The Celery app the worker of tests/integration/test_celery.py runs: the demo's jobs plus tasks that queue
subtasks, fail and retry, wait for the test, and make up a chord. Imported by the test and by the worker."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from celery import Task

from trackline.demo.tasks import app

log = logging.getLogger("tests.celery")

#: A message a killed worker held unacknowledged goes back to the queue after 3 s, looked for every second
#: (kombu's defaults: an hour, and every 100 s).
app.conf.broker_transport_options = {"visibility_timeout": 3, "unacked_restore_interval": 1,
                                     "unacked_restore_throttle": 1}


@app.task(name="tests.parent")
def parent() -> None:
    log.info("parent queues a child")
    child.delay()


@app.task(name="tests.child")
def child() -> str:
    log.info("child runs")
    return "child"


@app.task(name="tests.flaky", bind=True, max_retries=3)
def flaky(self: Task, failures: int) -> int:
    log.info("flaky attempt", extra={"attempt": self.request.retries})
    if self.request.retries < failures:
        raise self.retry(exc=RuntimeError("not yet"), countdown=0.1)
    return self.request.retries


@app.task(name="tests.wait_for")
def wait_for(path: str) -> None:
    """Log, then wait (at most a minute) until the test creates ``path``."""
    log.info("waiting", extra={"release_file": path})
    deadline = time.monotonic() + 60
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    log.info("released")


@app.task(name="tests.add")
def add(x: int, y: int) -> int:
    log.info("adding", extra={"x": x, "y": y})
    return x + y


@app.task(name="tests.total")
def total(values: list[int]) -> int:
    log.info("total", extra={"values": values})
    return sum(values)


@app.task(name="tests.sign_in")
def sign_in(blob: str, password: str, fail: bool = False) -> dict[str, str]:
    """A task given a secret and a big payload; its result holds both, unless it fails."""
    log.info("signing in", extra={"blob_bytes": len(blob)})
    if fail:
        raise PermissionError("refused")
    return {"password": password, "blob": blob}
