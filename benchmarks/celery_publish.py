"""``scripts/bench --celery-publish``: what queueing a Celery task costs the request that queues it.

A real redis-server on a free loopback port (data in a temp dir, stopped by its PID); this process publishes
the demo's task (``trackline.jobs.run``) with ``apply_async`` inside a request's context (tracking ID and W3C
trace set), in interleaved rounds with trackline's publish hook connected (``instrument``) and disconnected.
Reported: CPU µs of this process per publish (what a gunicorn worker spends; redis's own CPU is not counted),
the median over rounds, their difference, and the hook's own cost measured alone (the difference is within
the noise of a shared machine). Nothing consumes the queue; it is flushed after each round.
"""

from __future__ import annotations

import contextvars
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from celery import signals

from trackline import context
from trackline.celery import _on_publish
from trackline.tracecontext import parse_traceparent

PUBLISH_UID = "trackline.celery.publish"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _redis(command: bytes, port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(command + b"\r\n")
        return sock.recv(64)


def _start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    redis = shutil.which("redis-server")
    if redis is None:
        raise SystemExit("redis-server is not installed (scripts/bench --celery-publish installs it with apt-get)")
    port = _free_port()
    process = subprocess.Popen([redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                                "no", "--dir", str(directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if _redis(b"PING", port).startswith(b"+PONG"):
                return process, port
        except OSError:
            time.sleep(0.05)
    process.terminate()
    raise SystemExit("redis-server did not answer within 30 s")


def _round(task: object, publishes: int) -> float:
    """CPU µs per publish of ``publishes`` ``apply_async`` calls made in a request's context."""

    def publish_all() -> float:
        context.enter("bench-request", parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))
        start = time.process_time()
        for n in range(publishes):
            task.apply_async((f"job-{n}", 0.0), retry=False)  # type: ignore[attr-defined]
        return (time.process_time() - start) / publishes * 1e6

    return contextvars.copy_context().run(publish_all)


def _hook_alone(calls: int) -> float:
    """CPU µs per call of the publish hook by itself (what ``instrument`` adds to each publish, without noise)."""

    def call_all() -> float:
        context.enter("bench-request", parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))
        start = time.process_time()
        for _ in range(calls):
            _on_publish(headers={})
        return (time.process_time() - start) / calls * 1e6

    return contextvars.copy_context().run(call_all)


def run(publishes: int, cycles: int) -> str:
    from trackline.demo.tasks import app

    with tempfile.TemporaryDirectory(prefix="trackline-bench-redis-") as tmp:
        process, port = _start_redis(Path(tmp))
        try:
            url = f"redis://127.0.0.1:{port}/0"
            app.conf.update(broker_url=url, result_backend=None)
            task = app.tasks["trackline.jobs.run"]
            _round(task, publishes // 4)  # warm-up: connection, producer pool, code paths
            results: dict[str, list[float]] = {"without": [], "with": []}
            for _ in range(cycles):
                for label in ("without", "with"):
                    if label == "with":
                        signals.before_task_publish.connect(_on_publish, weak=False, dispatch_uid=PUBLISH_UID)
                    else:
                        signals.before_task_publish.disconnect(dispatch_uid=PUBLISH_UID)
                    results[label].append(_round(task, publishes))
                    _redis(b"FLUSHALL", port)
        finally:
            process.terminate()
            process.wait(20)
    without, with_ = statistics.median(results["without"]), statistics.median(results["with"])
    calls = publishes * 20
    hook = _hook_alone(calls)
    rows = "\n".join(f"| {n} | {a:.1f} | {b:.1f} |" for n, (a, b) in
                     enumerate(zip(results["without"], results["with"], strict=True), 1))
    return (f"Celery publish cost ({publishes} `apply_async` per round, {cycles} interleaved rounds, CPU µs of the"
            " publishing process per task)\n\n| round | without instrument | with instrument |\n|---:|---:|---:|\n"
            f"{rows}\n| **median** | **{without:.1f}** | **{with_:.1f}** |\n\n"
            f"Difference of the medians: {with_ - without:+.1f} µs per task ({(with_ / without - 1) * 100:+.1f} %);"
            f" the hook alone (`before_task_publish` receiver, {calls} calls): {hook:.2f} µs per task.")
