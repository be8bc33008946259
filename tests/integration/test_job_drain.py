"""A 202 is a promise: workers that stop (HUP, TERM, ``max_requests``) while their CPU is loaded finish the
jobs they accepted, or log each one they had to abandon; none is dropped silently.

The drop shows only under load (a job of an idle worker ends before the worker does), so wrk loads the
server beside the job requests, as in the report of issue 15.
"""

from __future__ import annotations

import itertools
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from support.conf import edit_yaml
from support.load import Answer, Load
from support.server import Server, new_server

JOBS = 300
CLIENTS = 6
WRK_CONNECTIONS = 16

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (scripts/test installs it)")


@contextmanager
def wrk_load(server: Server) -> Iterator[None]:
    """wrk keeps both workers busy with GET /api/names until the block ends (stopped by its PID)."""
    load = subprocess.Popen(["wrk", "-t1", f"-c{WRK_CONNECTIONS}", "-d120s", f"{server.url}/api/names"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        load.terminate()
        load.wait(10)


class Accepted(dict[str, str]):
    """``{job_id: tracking ID}`` of the 202s among a load's answers, taken in as they come."""

    taken = 0  # how many of the answers were looked at

    def take(self, answers: list[Answer]) -> int:
        """Take in the answers that came since the last call; how many jobs were accepted so far."""
        new = answers[self.taken:]
        self.taken += len(new)
        for answer in new:
            if answer.status == 202:
                self[json.loads(answer.body)["data"]["job_id"]] = answer.tracking_id
        return len(self)


def accept_jobs(server: Server, disrupt: Callable[[int], None], enough: Callable[[int], bool] | None = None,
                timeout: float = 90.0) -> dict[str, str]:
    """POST /api/jobs from ``CLIENTS`` clients until ``enough(accepted so far)`` (default: ``JOBS`` were
    accepted) or the server is gone, calling ``disrupt(accepted so far)`` meanwhile; ``{job_id: tracking ID}``
    of the 202s."""
    enough = enough or (lambda count: count >= JOBS)
    accepted = Accepted()
    ids = (f"drain-{uuid.uuid4().hex[:12]}" for _ in itertools.count())
    deadline = time.monotonic() + timeout
    # A connection per request, as urllib makes; one that a stopping worker or server refuses or drops (urllib
    # turned any OSError of connecting or sending into URLError) is no error: the client goes on.
    with Load(server.port, ids, clients=CLIENTS, method="POST", path="/api/jobs", keep_alive=False, timeout=10,
              tolerate=(OSError,)) as load:
        while time.monotonic() < deadline and server.process.poll() is None:
            disrupt(accepted.take(load.answers))
            if enough(len(accepted)):
                break
            time.sleep(0.01)
    accepted.take(load.answers)  # those answered while the clients stopped
    return dict(accepted)


def restarts(server: Server) -> int:
    """How many times a worker said it restarts after ``max_requests``."""
    return sum(r["message"].startswith("Autorestarting worker") for r in server.logs("error.log"))


def job_ends(server: Server) -> dict[str, list[tuple[str, Any]]]:
    """``{job_id: [(message, tracking_id), ...]}`` of the "job done" and "job abandoned" lines in app.log."""
    ends: dict[str, list[tuple[str, Any]]] = {}
    for record in server.logs("app.log"):
        if record["message"] == "job done" or record["message"].startswith("job abandoned"):
            ends.setdefault(record["job_id"], []).append((record["message"], record["tracking_id"]))
    return ends


def assert_every_job_done(server: Server, accepted: dict[str, str]) -> None:
    """Every accepted job logged "job done" once, with its request's ID (waiting for jobs still running)."""
    assert len(accepted) > 50, f"only {len(accepted)} jobs were accepted"
    deadline = time.monotonic() + 30  # jobs take 0.2 s: the ones still running end long before
    while not accepted.keys() <= (ends := job_ends(server)).keys() and server.process.poll() is None:
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    dropped = accepted.keys() - ends.keys()
    assert not dropped, f"{len(dropped)} of {len(accepted)} accepted jobs never ended nor were abandoned"
    wrong = {job_id: ends[job_id] for job_id in accepted if ends[job_id] != [("job done", accepted[job_id])]}
    assert not wrong, f"{len(wrong)} jobs ended otherwise, e.g. {next(iter(wrong.items()))}"


def exited_workers(server: Server) -> int:
    return sum(r["message"].startswith("Worker exiting") for r in server.logs("error.log"))


def test_hups_under_load_drop_no_accepted_job(server: Server) -> None:
    hups_at = {JOBS // 5, JOBS // 2, JOBS * 4 // 5}  # 3 HUPs while jobs run

    def hup(accepted: int) -> None:
        if hups_at and accepted >= min(hups_at):
            hups_at.discard(min(hups_at))
            server.signal(signal.SIGHUP)

    with wrk_load(server):
        accepted = accept_jobs(server, hup)
    assert not hups_at
    assert_every_job_done(server, accepted)
    assert server.stop() == 0
    assert exited_workers(server) >= 2 * 3 + 2


def test_term_under_load_waits_for_the_running_jobs(server: Server) -> None:
    stopped = threading.Event()

    def term(accepted: int) -> None:
        if accepted >= JOBS // 3 and not stopped.is_set():
            stopped.set()
            server.signal(signal.SIGTERM)

    with wrk_load(server):
        accepted = accept_jobs(server, term)
        assert server.process.wait(60) == 0
    assert stopped.is_set()
    assert_every_job_done(server, accepted)


def test_max_requests_restarts_under_load_drop_no_accepted_job(make_server: Any) -> None:
    server = make_server()
    edit_yaml(server.conf_dir / "gunicorn.yaml", lambda settings: settings.update(
        max_requests=100, max_requests_jitter=20))
    server.start()
    with wrk_load(server):
        accepted = accept_jobs(server, lambda accepted: None,
                               enough=lambda accepted: accepted >= JOBS and restarts(server) >= 4)
    assert restarts(server) >= 4, "the workers did not restart often enough to test anything"
    assert_every_job_done(server, accepted)
    assert server.stop() == 0


#: ``trackline serve`` whose demo jobs take 60 s (set in each worker once it has loaded the app).
SLOW_JOBS_SERVE = """
import sys
from pathlib import Path
from trackline.server import application

load = application.TracklineApplication.load

def load_with_slow_jobs(self):
    app = load(self)
    from trackline.demo import jobs
    jobs.JOB_SECONDS = 60
    return app

application.TracklineApplication.load = load_with_slow_jobs
application.serve(Path(sys.argv[1]))
"""


class SlowJobServer(Server):
    @property
    def command(self) -> list[str]:
        return [sys.executable, "-c", SLOW_JOBS_SERVE, str(self.conf_dir)]


def test_jobs_outliving_graceful_timeout_are_logged_as_abandoned_with_their_ids(tmp_path: Any) -> None:
    server = new_server(tmp_path / "server", kind=SlowJobServer)
    edit_yaml(server.conf_dir / "gunicorn.yaml", lambda settings: settings.update(graceful_timeout=5))
    try:
        server.start()
        jobs = {}
        for number in range(6):
            response = server.request("/api/jobs", method="POST", headers={"X-Tracking-ID": f"slow-{number}"})
            assert response.status == 202
            jobs[response.json()["data"]["job_id"]] = f"slow-{number}"
        assert server.stop() == 0
    finally:
        server.stop()
    abandoned = {r["job_id"]: (r["level"], r["tracking_id"]) for r in server.logs("app.log")
                 if r["message"] == "job abandoned: its worker stopped before it ended"}
    assert abandoned == {job_id: ("ERROR", tracking_id) for job_id, tracking_id in jobs.items()}
    assert not [r for r in server.logs("error.log") if "SIGKILL" in r["message"]]  # they exited, not killed
