"""Background jobs under real gunicorn + gevent: 200 concurrent requests, every job line keeps its request's ID."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections import defaultdict

from support.load import concurrently
from support.logs import assert_contract
from support.server import Server

CLIENTS = 50
REQUESTS_PER_CLIENT = 4  # sent one after another on one keep-alive connection: greenlets get reused
TIMEOUT = 30.0


def _post_jobs(server: Server, client: int) -> dict[str, str]:
    """``REQUESTS_PER_CLIENT`` POST /api/jobs on one connection; ``{job_id: the X-Tracking-ID sent}``."""
    jobs = {}
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    try:
        for n in range(REQUESTS_PER_CLIENT):
            tracking_id = f"job-{client}-{n}-{uuid.uuid4().hex[:8]}"
            connection.request("POST", "/api/jobs", headers={"X-Tracking-ID": tracking_id})
            response = connection.getresponse()
            body = json.loads(response.read())
            assert response.status == 202, body
            assert response.headers["X-Tracking-ID"] == tracking_id
            jobs[body["data"]["job_id"]] = tracking_id
    finally:
        connection.close()
    return jobs


def _wait_for_lines(server: Server, text: str, count: int, timeout: float = TIMEOUT) -> int:
    """Poll app.log until ``count`` lines contain ``text`` (raw text: a line may be half-written mid-poll)."""
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        path = server.log_dir / "app.log"
        seen = sum(text in row for row in path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0
        if seen >= count:
            break
        time.sleep(0.2)
    return seen


def test_concurrent_jobs_log_only_their_own_request_id(server):
    batches = concurrently(lambda client: _post_jobs(server, client), range(CLIENTS), threads=CLIENTS)
    jobs = {job_id: tracking_id for batch in batches for job_id, tracking_id in batch.items()}
    total = CLIENTS * REQUESTS_PER_CLIENT
    assert len(jobs) == total and len(set(jobs.values())) == total

    assert _wait_for_lines(server, '"job done"', total) == total
    assert server.stop() == 0

    lines: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    for record in server.logs("app.log"):
        assert_contract(record)
        if record["message"] in ("job started", "job done"):
            lines[record["job_id"]].append((record["message"], record["tracking_id"]))
    assert lines.keys() == jobs.keys()
    mixed = {job_id: seen for job_id, seen in lines.items()
             if sorted(seen) != [("job done", jobs[job_id]), ("job started", jobs[job_id])]}
    assert not mixed, f"{len(mixed)} jobs logged a wrong or missing ID, e.g. {next(iter(mixed.items()))}"

    access = [r for r in server.logs("access.log") if r["request_path"] == "/api/jobs"]
    assert sorted(r["tracking_id"] for r in access) == sorted(jobs.values())
    assert {r["status_code"] for r in access} == {202}
