"""Celery tasks carry the tracking ID: a real redis-server, a real `trackline worker`, a real `trackline serve`.

Every server here is started by the test on a free loopback port and stopped by its PID.
"""

from __future__ import annotations

import contextvars
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.celery_worker import REDIS, Redis, Worker, done, new_worker
from support.conf import edit_yaml
from support.load import concurrently
from support.logs import assert_contract, read_json_lines
from support.paths import CONF, REPO, TRACKLINE
from support.processes import free_port
from support.server import Server
from support.waiting import wait_until

if REDIS is None and os.environ.get("CI") != "true":
    pytest.skip("redis-server is not installed (scripts/test installs Debian's redis-server)",
                allow_module_level=True)

pytest.importorskip("celery", reason="the celery extra is not installed (scripts/test installs it)")

import celery_tasks
from celery import chain, chord, group

from trackline import context
from trackline.tracecontext import parse_traceparent

PUBLISH_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    """One redis-server for the module (this process's Celery app keeps its connections to one URL)."""
    server = Redis(tmp_path_factory.mktemp("redis")).start()
    celery_tasks.app.conf.update(broker_url=server.url, result_backend=server.url,
                                 broker_connection_timeout=5, redis_socket_timeout=5)
    yield server
    server.stop()


@pytest.fixture
def redis(redis_server: Redis) -> Redis:
    """The module's redis-server, running and empty."""
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    assert redis_server.command(b"FLUSHALL").startswith(b"+OK")
    return redis_server


@pytest.fixture
def make_worker(tmp_path: Path, redis: Redis) -> Iterator[Callable[..., Worker]]:
    workers: list[Worker] = []

    def make(concurrency: int = 2) -> Worker:
        worker = new_worker(tmp_path / "worker", redis.url, concurrency)
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.stop()


@pytest.fixture
def worker(make_worker: Callable[..., Worker]) -> Worker:
    return make_worker().start()


@pytest.fixture
def web(make_server: Callable[..., Server], redis: Redis) -> Server:
    """trackline serve whose POST /api/jobs queues on the test's redis."""
    server = make_server()
    edit_yaml(server.conf_dir / "app.yaml",
              lambda app: app.update(JOBS_BROKER_URL=redis.url, JOBS_PUBLISH_TIMEOUT=PUBLISH_TIMEOUT))
    return server.start()


def new_trace_id() -> str:
    return secrets.token_hex(16)


def traceparent(trace_id: str) -> str:
    return f"00-{trace_id}-{secrets.token_hex(8)}-01"


def in_request(tracking_id: str, trace_id: str, publish: Callable[[], Any]) -> Any:
    """``publish()`` as code serving a request with this ID and trace would run it."""

    def run() -> Any:
        context.enter(tracking_id, parse_traceparent(traceparent(trace_id)))
        return publish()

    return contextvars.copy_context().run(run)


def post_job(web: Server, tracking_id: str, trace_id: str) -> dict[str, Any]:
    response = web.request("/api/jobs", method="POST",
                           headers={"X-Tracking-ID": tracking_id, "traceparent": traceparent(trace_id)})
    assert response.status == 202, response.body
    return response.json()["data"]


@pytest.mark.slow
def test_every_task_line_carries_its_own_requests_id_and_trace(make_worker, web: Server) -> None:
    worker = make_worker(concurrency=4).start()
    requests = {f"job-{n}-{uuid.uuid4().hex[:8]}": new_trace_id() for n in range(200)}
    jobs = dict(zip(requests, concurrently(lambda item: post_job(web, *item)["job_id"], requests.items(), threads=8),
                    strict=True))
    wait_until(lambda: all(done(worker, job) for job in jobs.values()), "200 jobs done", timeout=120)
    records = worker.logs()
    for tracking_id, job in jobs.items():
        lines = [r for r in records if r.get("task_id") == job]
        assert {r["message"] for r in lines} >= {"job started", "job done"}
        assert {(r["tracking_id"], r["trace_id"], r["task_name"]) for r in lines} == {
            (tracking_id, requests[tracking_id], "trackline.jobs.run")}
        assert {r["job_id"] for r in lines if "job_id" in r} == {job}
    for record in records:
        assert_contract(record)
        if "task_id" not in record:  # the worker's own lines, between tasks
            assert record["tracking_id"] is None, record
    assert sorted(p.name for p in worker.log_dir.iterdir()) == ["worker.log"]


def test_trace_shows_the_request_and_its_task_in_time_order(worker: Worker, web: Server) -> None:
    tracking_id, trace_id = f"trace-{uuid.uuid4()}", new_trace_id()
    job = post_job(web, tracking_id, trace_id)["job_id"]
    wait_until(lambda: done(worker, job), "the job done")
    wait_until(lambda: any(r["tracking_id"] == tracking_id for r in web.logs("access.log")), "the access line")
    result = subprocess.run([str(TRACKLINE), "trace", tracking_id, "--log-dir", str(web.log_dir),
                             "--log-dir", str(worker.log_dir)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["tracking_id"] for r in lines} == {tracking_id}
    loggers = [r["logger"] for r in lines]
    assert "gunicorn.access" in loggers and "trackline.jobs" in loggers
    assert [r["message"] for r in lines if r.get("task_id") == job][:2] == ["job started", "job done"]
    assert any(r["message"] == "job queued" and "task_id" not in r for r in lines)  # the app line of the request
    stamps = [r["@timestamp"] for r in lines]
    assert stamps == sorted(stamps)


def test_job_state_is_reported(worker: Worker, web: Server) -> None:
    job = post_job(web, "state-1", new_trace_id())["job_id"]
    wait_until(lambda: web.get(f"/api/jobs/{job}").json()["data"]["state"] == "SUCCESS", "the job's SUCCESS")


def test_a_subtask_names_its_parent(worker: Worker) -> None:
    trace_id = new_trace_id()
    result = in_request("parent-1", trace_id, celery_tasks.parent.delay)
    wait_until(lambda: [r for r in worker.logs() if r["message"] == "child runs"], "the child task")
    child = next(r for r in worker.logs() if r["message"] == "child runs")
    assert child["parent_task_id"] == result.id
    assert (child["tracking_id"], child["trace_id"], child["task_name"]) == ("parent-1", trace_id, "tests.child")
    parent_line = next(r for r in worker.task_lines(result.id) if r["message"] == "parent queues a child")
    assert parent_line["parent_task_id"] is None
    assert child["span_id"] != parent_line["span_id"]


def test_a_retried_task_keeps_its_id_on_every_attempt(worker: Worker) -> None:
    trace_id = new_trace_id()
    result = in_request("retry-1", trace_id, lambda: celery_tasks.flaky.delay(2))
    assert result.get(timeout=60) == 2
    attempts = [r for r in worker.task_lines(result.id) if r["message"] == "flaky attempt"]
    assert [r["attempt"] for r in attempts] == [0, 1, 2]
    assert {(r["tracking_id"], r["trace_id"]) for r in worker.task_lines(result.id)} == {("retry-1", trace_id)}


def test_chain_group_and_chord_keep_the_id(worker: Worker) -> None:
    trace_id = new_trace_id()
    add, total = celery_tasks.add, celery_tasks.total
    results = [
        in_request("canvas-1", trace_id, lambda: chain(add.s(1, 2), add.s(3), add.s(4)).delay()),
        in_request("canvas-1", trace_id, lambda: group(add.s(i, i) for i in range(3)).delay()),
        in_request("canvas-1", trace_id, lambda: chord((add.s(i, 1) for i in range(3)), total.s()).delay()),
    ]
    assert [r.get(timeout=60) for r in results] == [10, [0, 2, 4], 6]
    lines = [r for r in worker.logs() if r["message"] in ("adding", "total")]
    assert len(lines) == 3 + 3 + 3 + 1
    assert {(r["tracking_id"], r["trace_id"]) for r in lines} == {("canvas-1", trace_id)}


def test_malformed_or_missing_ids_get_a_new_one(worker: Worker) -> None:
    bad = celery_tasks.add.apply_async((1, 1), headers={"tracking_id": "bad id\n" + "x" * 300})
    outside = celery_tasks.add.delay(2, 2)
    assert (bad.get(timeout=30), outside.get(timeout=30)) == (2, 4)
    bad_lines, outside_lines = worker.task_lines(bad.id), worker.task_lines(outside.id)
    assert bad_lines[0]["level"] == "WARNING"
    assert bad_lines[0]["message"] == "replaced invalid tracking ID from the task message"
    assert bad_lines[0]["rejected_length"] == 307
    assert outside_lines[0]["message"] == "new tracking ID: the task was published outside a request"
    for lines in (bad_lines, outside_lines):
        assert len({r["tracking_id"] for r in lines}) == 1 and lines[0]["tracking_id"]
    assert bad_lines[0]["tracking_id"] != outside_lines[0]["tracking_id"]


def test_broker_down_gives_503_then_jobs_flow_again(worker: Worker, web: Server, redis: Redis) -> None:
    redis.stop()
    started = time.monotonic()
    response = web.request("/api/jobs", method="POST", headers={"X-Tracking-ID": "down-1"},
                           timeout=PUBLISH_TIMEOUT + 10)  # a hung request fails here
    assert response.status == 503, response.body
    assert response.json() == {"code": 503, "msg": "job queue unavailable, try again later", "data": None}
    assert response.headers["X-Tracking-ID"] == "down-1"
    assert time.monotonic() - started < PUBLISH_TIMEOUT + 10
    redis.start()

    def accepted() -> str | None:
        answer = web.request("/api/jobs", method="POST", headers={"X-Tracking-ID": "up-1"})
        return answer.json()["data"]["job_id"] if answer.status == 202 else None

    job = wait_until(accepted, "POST /api/jobs to be accepted again", timeout=60)
    wait_until(lambda: done(worker, job), "the job done by the same worker", timeout=90)
    assert {r["tracking_id"] for r in worker.task_lines(job)} == {"up-1"}


def test_a_task_killed_with_its_worker_runs_again_with_its_id(make_worker, tmp_path: Path) -> None:
    worker = make_worker().start()
    release = tmp_path / "release"
    result = in_request("killed-1", new_trace_id(), lambda: celery_tasks.wait_for.delay(str(release)))
    wait_until(lambda: [r for r in worker.task_lines(result.id) if r["message"] == "waiting"], "the task to run")
    worker.signal(signal.SIGKILL)
    worker.process.wait(20)
    worker = make_worker().start()
    wait_until(lambda: len([r for r in worker.task_lines(result.id) if r["message"] == "waiting"]) == 2,
               "the task to run again on the restarted worker", timeout=60)
    release.touch()
    result.get(timeout=30)
    assert {r["tracking_id"] for r in worker.task_lines(result.id)} == {"killed-1"}


def test_term_lets_the_running_task_finish(worker: Worker, tmp_path: Path) -> None:
    release = tmp_path / "release"
    result = in_request("term-1", new_trace_id(), lambda: celery_tasks.wait_for.delay(str(release)))
    wait_until(lambda: [r for r in worker.task_lines(result.id) if r["message"] == "waiting"], "the task to run")
    worker.signal(signal.SIGTERM)
    wait_until(lambda: "Warm shutdown" in (worker.root / "worker.out").read_text(), "the warm shutdown to begin")
    assert worker.process.poll() is None  # still there: waiting for the task
    release.touch()
    assert worker.process.wait(30) == 0
    released, succeeded = [r["message"] for r in worker.task_lines(result.id)][-2:]
    assert (released, succeeded.split(" in ")[0]) == ("released", f"Task tests.wait_for[{result.id}] succeeded")


def test_hup_applies_a_new_logging_yaml(worker: Worker) -> None:
    edit_yaml(worker.conf_dir / "logging.yaml",
              lambda config: config["formatters"]["json"].update(static_fields={"service": "worker-2"}))
    worker.signal(signal.SIGHUP)
    wait_until(lambda: [r for r in worker.logs() if r["message"] == "logging.yaml re-applied"], "the reload line")

    def new_lines_tagged() -> bool:
        result = celery_tasks.add.delay(5, 5)
        result.get(timeout=30)
        return all(r.get("service") == "worker-2" for r in worker.task_lines(result.id))

    wait_until(new_lines_tagged, "task lines with the new static field", timeout=60)
    assert worker.process.poll() is None  # reloaded in place, not re-executed


def test_check_config_checks_worker_yaml(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    env = {**os.environ, "TRACKLINE_LOG_DIR": str(tmp_path / "logs"), "TRACKLINE_RUN_DIR": str(tmp_path / "run"),
           "TRACKLINE_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"}
    ok = subprocess.run([str(TRACKLINE), "check-config", "--conf-dir", str(conf)], capture_output=True, text=True,
                        env=env, timeout=60, cwd=REPO)
    assert (ok.returncode, ok.stderr) == (0, "")
    assert "worker:       trackline.demo.tasks:app on redis://127.0.0.1:" in ok.stdout
    assert "is not reachable now (Connection refused); the worker waits for it, POST /api/jobs answers 503" in ok.stdout
    edit_yaml(conf / "worker.yaml", lambda w: w.update(celery_app="no.such.module:app", concurrency=0))
    bad = subprocess.run([str(TRACKLINE), "check-config", "--conf-dir", str(conf)], capture_output=True, text=True,
                         env=env, timeout=60)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.splitlines() == [
        f"trackline: {conf / 'worker.yaml'}: concurrency must be a whole number of at least 1, not 0"]
    edit_yaml(conf / "worker.yaml", lambda w: w.update(concurrency=2))
    bad = subprocess.run([str(TRACKLINE), "check-config", "--conf-dir", str(conf)], capture_output=True, text=True,
                         env=env, timeout=60)
    assert bad.stderr.splitlines() == [
        f"trackline: {conf / 'worker.yaml'}: celery_app 'no.such.module:app' cannot be imported:"
        " ModuleNotFoundError: No module named 'no'"]


def test_logrotate_renames_worker_log_and_every_task_line_survives(worker: Worker, tmp_path: Path) -> None:
    if shutil.which("logrotate") is None:
        pytest.skip("logrotate is not installed (scripts/test installs it)")
    rules = (REPO / "logrotate/trackline").read_text().replace("/var/log/trackline/", f"{worker.log_dir}/")
    (tmp_path / "rules").write_text(rules.replace("su trackline trackline", "su root root"))
    before = [celery_tasks.add.delay(n, 0) for n in range(10)]
    assert [r.get(timeout=30) for r in before] == list(range(10))
    subprocess.run(["logrotate", "-s", str(tmp_path / "state"), "-f", str(tmp_path / "rules")], check=True,
                   timeout=60)
    after = [celery_tasks.add.delay(n, 100) for n in range(10)]  # the children reopen worker.log by its path
    assert [r.get(timeout=30) for r in after] == list(range(100, 110))
    rotated = [record for path in sorted(worker.log_dir.glob("worker.log-*")) for record in read_json_lines(path)]
    current = worker.logs()
    for results, lines in ((before, rotated), (after, current)):
        tasks = {r["task_id"] for r in lines if r["message"] == "adding"}
        assert tasks == {r.id for r in results}


def test_check_config_refuses_a_bad_publish_timeout(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    (conf / "worker.yaml").unlink()
    edit_yaml(conf / "app.yaml", lambda app: app.update(JOBS_BROKER_URL="redis://127.0.0.1:1/0",
                                                          JOBS_PUBLISH_TIMEOUT="soon"))
    env = {**os.environ, "TRACKLINE_LOG_DIR": str(tmp_path / "logs"), "TRACKLINE_RUN_DIR": str(tmp_path / "run")}
    done = subprocess.run([str(TRACKLINE), "check-config", "--conf-dir", str(conf)], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 1 and done.stderr.splitlines() == [
        f"trackline: {conf / 'app.yaml'}: JOBS_PUBLISH_TIMEOUT: must be a number of seconds above 0, not 'soon'"]


SECRET = f"hunter2-{secrets.token_hex(4)}"
BLOB = "b" * 1_500_000
CAP = 1_048_576
CUT = re.compile(r"\.\.\.\[truncated (\d+) of (\d+) bytes\]$")


def celery_lines(worker: Worker, *task_ids: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Celery's own lines of each task (received, succeeded, failed, retry), by task ID and then by state."""
    found: dict[str, dict[str, dict[str, Any]]] = {task_id: {} for task_id in task_ids}
    for record in worker.logs():
        data = record.get("data")
        if record["logger"].startswith("celery.") and isinstance(data, dict) and data.get("id") in found:
            found[data["id"]][data["state"]] = record
    return found


def run_payload_tasks(worker: Worker) -> tuple[dict[str, dict[str, dict[str, Any]]], bytes, list[str]]:
    """A task with a secret keyword argument and a 1.5 MB argument that succeeds, one that fails, one retried:
    Celery's lines of each, the raw worker.log once they are all there, and the three task IDs."""
    ok = celery_tasks.sign_in.delay(BLOB, password=SECRET)
    failed = celery_tasks.sign_in.delay(BLOB, password=SECRET, fail=True)
    retried = celery_tasks.flaky.delay(1)
    ids = [ok.id, failed.id, retried.id]
    ends = {ok.id: {"RECEIVED", "SUCCESS"}, failed.id: {"RECEIVED", "FAILURE"},
            retried.id: {"RECEIVED", "RETRY", "SUCCESS"}}
    wait_until(lambda: all(ends[task_id] <= set(lines) for task_id, lines in celery_lines(worker, *ids).items()),
               "Celery's lines of the three tasks", timeout=60)
    return celery_lines(worker, *ids), (worker.log_dir / "worker.log").read_bytes(), ids


def assert_within_the_cap(raw: bytes) -> None:
    assert raw.endswith(b"\n")
    assert max(len(line) for line in raw.splitlines(keepends=True)) <= CAP


@pytest.mark.slow
def test_task_lines_name_the_task_never_its_arguments_or_result(worker: Worker) -> None:
    lines, raw, (ok, failed, retried) = run_payload_tasks(worker)
    assert SECRET.encode() not in raw and b"b" * 64 not in raw
    assert_within_the_cap(raw)
    for task_id, states in lines.items():
        for state, record in states.items():
            assert {"args", "kwargs", "return_value", "result"}.isdisjoint(record["data"]), record
            assert (record["data"]["id"], record["data"]["state"]) == (task_id, state)
            assert record["message"].startswith(f"Task {record['data']['name']}[{task_id}] ")
    succeeded = lines[ok]["SUCCESS"]
    assert re.fullmatch(rf"Task tests\.sign_in\[{ok}\] succeeded in [0-9.e-]+s", succeeded["message"])
    assert isinstance(succeeded["data"]["runtime"], float) and succeeded["tracking_id"]
    assert lines[failed]["FAILURE"]["data"]["exc"] == "PermissionError('refused')"
    assert lines[retried]["RETRY"]["message"].endswith("retry: Retry in 0.1s: RuntimeError('not yet')")


@pytest.mark.slow
def test_task_payloads_on_are_redacted_and_cut(make_worker: Callable[..., Worker]) -> None:
    worker = make_worker()
    worker.env["TRACKLINE_TASK_PAYLOADS"] = "true"
    worker.start()
    lines, raw, (ok, failed, retried) = run_payload_tasks(worker)
    assert SECRET.encode() not in raw
    assert_within_the_cap(raw)
    succeeded, failure = lines[ok]["SUCCESS"], lines[failed]["FAILURE"]
    for record in (succeeded, failure):
        data = record["data"]
        assert data["kwargs"]["password"] == "[REDACTED]" and record["truncated"] is True
        [blob] = data["args"]
        assert blob.startswith("bbbb") and CUT.search(blob).group(2) == str(len(BLOB))
    assert succeeded["data"]["result"]["password"] == "[REDACTED]"
    assert CUT.search(succeeded["data"]["result"]["blob"])
    assert (lines[retried]["RETRY"]["data"]["args"], lines[retried]["SUCCESS"]["data"]["result"]) == ([1], 1)
    assert all("args" not in task["RECEIVED"]["data"] for task in lines.values())  # Celery has only reprs there
