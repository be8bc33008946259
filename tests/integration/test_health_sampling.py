"""Quiet health checks under a few thousand requests: app.yaml's TRACKLINE_ACCESS_SAMPLE in a real ``trackline
serve`` (1 in N 2xx lines kept per worker, every other status kept) and the edge's map in a real nginx."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from support import http
from support.edge import Edge, require_nginx
from support.load import Load, concurrently
from support.server import Server
from support.waiting import wait_until

REQUESTS = 3000
EVERY = 10


def health_ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{n}-{uuid.uuid4().hex[:8]}" for n in range(count)]


def run_load(port: int, path: str, ids: list[str]) -> None:
    load = Load(port, ids, clients=8, path=path, expect=200).start()
    load.join(timeout=120)
    assert not load.errors and len(load.answers) == len(ids), load.errors[:5]


def test_the_app_keeps_one_in_n_health_lines_and_every_failure(make_server: Any) -> None:
    server: Server = make_server()  # two workers: each counts its own
    (server.conf_dir / "app.yaml").write_text(f"TRACKLINE_ACCESS_SAMPLE: {{/api/health: {EVERY}, /api/names: 0}}\n")
    server.start()
    workers = server.wait_for_workers()
    ids = health_ids("health", REQUESTS)
    run_load(server.port, "/api/health", ids)
    failed = concurrently(lambda n: server.request("/api/health", "POST", {"X-Tracking-ID": f"post-{n}"}),
                          range(50), threads=8)
    assert {answer.status for answer in failed} == {405}
    for n in range(20):
        assert server.get("/api/names", {"X-Tracking-ID": f"names-{n}"}).status == 200
        assert server.get("/api/nope", {"X-Tracking-ID": f"nope-{n}"}).status == 404
    assert server.stop() == 0
    lines = server.logs("access.log")
    kept = [r for r in lines if r["tracking_id"] in set(ids)]
    # each worker keeps its first and then every EVERY-th: between REQUESTS/EVERY and that plus one per worker
    assert REQUESTS // EVERY <= len(kept) <= REQUESTS // EVERY + len(workers), len(kept)
    assert {r["status_code"] for r in kept} == {200}
    by_status = Counter((r["request_path"], r["status_code"]) for r in lines if r["tracking_id"].startswith(
        ("post-", "names-", "nope-")))
    assert by_status == {("/api/health", 405): 50, ("/api/nope", 404): 20}  # /api/names' 200s: none
    app_lines = {r["tracking_id"] for r in server.logs("app.log")}
    assert set(ids) <= app_lines  # only the access lines are sampled: the app's own lines are all there


def ids_in(lines: list[dict[str, Any]]) -> set[str]:
    return {r["tracking_id"] for r in lines}


class SamplingEdge(Edge):
    """The shipped edge with its health-check line uncommented (1 in 100, chosen at random)."""

    def write_config(self) -> Path:
        config = super().write_config()
        conf = self.dir / "trackline.conf"
        text = conf.read_text()
        line = '    # "~^2\\d\\d /api/health$"  $trackline_1_in_100;'
        assert line in text
        conf.write_text(text.replace(line, line.replace("# ", "", 1)))
        return config


def test_the_edge_keeps_about_one_in_a_hundred_health_lines_and_every_failure(make_server: Any,
                                                                                tmp_path: Path) -> None:
    require_nginx()
    app = make_server(env={"TRACKLINE_WORKERS": "1"}).start()
    edge = SamplingEdge(tmp_path / "edge", [f"127.0.0.1:{app.port}"]).start()
    try:
        ids = health_ids("edge-health", REQUESTS)
        run_load(edge.port, "/api/health", ids)
        for n in range(30):
            assert http.request(f"http://127.0.0.1:{edge.port}/api/health", "POST",
                                {"X-Tracking-ID": f"edge-post-{n}"}).status == 405
            assert http.request(f"http://127.0.0.1:{edge.port}/api/names", "GET",
                                {"X-Tracking-ID": f"edge-names-{n}"}).status == 200
        last = {"edge-post-29", "edge-names-29"}
        lines = wait_until(lambda: found if last <= ids_in(found := edge.logs()) else None, "the last lines")
    finally:
        assert edge.stop() == 0
    assert app.stop() == 0
    kept = [r for r in lines if r["tracking_id"] in set(ids)]
    # 1% of 3,000 at random: 30 expected, sigma about 5.5
    assert 10 <= len(kept) <= 60, len(kept)
    assert sum(r["tracking_id"].startswith("edge-post-") and r["status_code"] == 405 for r in lines) == 30
    assert sum(r["tracking_id"].startswith("edge-names-") for r in lines) == 30  # other paths: every line
    assert len([r for r in app.logs("access.log") if r["tracking_id"] in set(ids)]) == REQUESTS
