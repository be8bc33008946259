"""One request's path through a gunicorn worker, in-process, with the socket faked: where the microseconds go.

Each request is what ``AsyncWorker.handle_request`` does with it: gunicorn parses ``GET PATH`` from bytes,
builds the environ (``wsgi.create``), calls the app, writes the response to a socket that keeps nothing, writes
the access line and runs ``post_request``. The servers are those of ``scripts/bench``: (b) the bare Flask app
with no logging, (d) that app with gunicorn's stock text access log to a file, (c) trackline as ``trackline
serve`` runs it (``./conf``, its hooks, its JSON access line; log files in a temporary directory) and (g)
trackline serving (b)'s app. Lines are written in batches, as a gevent worker under load writes them once per
loop turn. No network, no gevent, no second process: it times the Python work of a request, which is steadier
than requests/s on a shared machine (docs/benchmarks.md gives both).

    .venv/bin/python benchmarks/request_path.py              # us per request of b, d, c, g, and the access line
    .venv/bin/python benchmarks/request_path.py c --profile  # cProfile of c's requests, by own time
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import shutil
import sys
import tempfile
import timeit
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from gunicorn import glogging
from gunicorn.config import Config
from gunicorn.http import wsgi
from gunicorn.http.parser import RequestParser

import apps
import trackline.logs.handlers

HERE = Path(__file__).resolve().parent
CLIENT, SERVER = ("127.0.0.1", 50000), ("127.0.0.1", 8000)
#: Requests per batch: the lines of a batch go out in one write, as one loop turn's in a loaded gevent worker.
BATCH = 64


class NullSocket:
    """A connected socket that takes every byte and keeps none."""

    def sendall(self, data: bytes) -> None:
        pass

    def send(self, data: bytes) -> int:
        return len(data)


class Worker:
    """What gunicorn's hooks and trackline's wrappers read of a worker."""

    def __init__(self, cfg: Config, log: Any, app: Any) -> None:
        self.cfg, self.log, self.wsgi = cfg, log, app


def _batched_lines() -> None:
    """Lines wait for ``flush`` as they wait for a loop turn in a gevent worker (no hub runs here)."""
    waiting = object()
    trackline.logs.handlers.running_hub = lambda: waiting  # type: ignore[assignment]
    trackline.logs.handlers.run_on_next_turn = lambda function: None  # type: ignore[assignment]


def server(which: str, tmp: Path) -> tuple[Worker, list[logging.Handler]]:
    """The worker of server ``which`` (b, d, c or g), its logs in ``tmp``, and the handlers to flush per batch."""
    if which in "bd":
        cfg = Config()
        if which == "d":
            cfg.set("accesslog", str(tmp / "access.log"))
        return Worker(cfg, glogging.Logger(cfg), apps.create_flask_app()), []
    from trackline.server import hooks
    from trackline.server.loading import load_app
    from trackline.server.settings import load_server_config

    shutil.copytree(HERE.parent / "conf", tmp / "conf")
    os.environ["TRACKLINE_LOG_DIR"] = str(tmp / "logs")
    os.environ["PYTHONPATH"] = str(HERE)  # g's app: apps.py, also for the child that checks it can be loaded
    config = load_server_config(tmp / "conf", "apps:create_flask_app()" if which == "g" else None)
    cfg = config.gunicorn_config()
    worker = Worker(cfg, cfg.logger_class(cfg), load_app(config.source, config.app))
    hooks._leave_scopes_in_post_request(worker)
    _batched_lines()
    return worker, list(logging.getLogger("gunicorn.access").handlers)


def request(worker: Worker, raw: bytes) -> None:
    """One request as ``AsyncWorker.handle_request`` serves it (keep-alive; no error paths)."""
    cfg = worker.cfg
    req = next(RequestParser(cfg, iter([raw]), CLIENT))
    started = datetime.now()
    resp, environ = wsgi.create(req, NullSocket(), CLIENT, SERVER, cfg)
    environ["wsgi.multithread"] = True
    body = worker.wsgi(environ, resp.start_response)
    try:
        for chunk in body:
            resp.write(chunk)
        resp.close()
    finally:
        worker.log.access(resp, req, environ, datetime.now() - started)
        if hasattr(body, "close"):
            body.close()
    cfg.post_request(worker, req, environ, resp)


def batches(handlers: list[logging.Handler], one: Callable[[], object]) -> Callable[[], None]:
    """``BATCH`` calls of ``one``, then their lines written (a loop turn's)."""
    def batch() -> None:
        for _ in range(BATCH):
            one()
        for handler in handlers:
            handler.flush()
    return batch


def per_request_us(batch: Callable[[], None], requests: int) -> float:
    """The fastest of five timings, in microseconds per request (the least disturbed by other processes)."""
    number = max(requests // BATCH // 5, 1)
    return min(timeit.repeat(batch, number=number, repeat=5)) / (number * BATCH) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("servers", nargs="?", default="bdcg", help="which servers, as their letters (default bdcg)")
    parser.add_argument("--path", default="/api/names", choices=tuple(apps.DATA))
    parser.add_argument("--requests", type=int, default=20_000, help="requests per timing (default 20000)")
    parser.add_argument("--profile", action="store_true", help="cProfile the first server's requests instead")
    args = parser.parse_args(argv)
    if not args.servers or set(args.servers) - set("bdcg"):
        parser.error(f"servers: letters of b, d, c and g, not {args.servers!r}")
    raw = f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: wrk\r\n\r\n".encode()
    if args.profile:
        with tempfile.TemporaryDirectory(prefix="trackline-request-path-") as tmp:
            worker, handlers = server(args.servers[0], Path(tmp))
            batch = batches(handlers, lambda: request(worker, raw))
            batch()  # warm
            profile = cProfile.Profile()
            for _ in range(args.requests // BATCH):
                profile.runcall(batch)
            pstats.Stats(profile).sort_stats("tottime").print_stats(40)
        return 0
    results = []
    for which in args.servers:  # each in a child process of its own: their logging setups differ
        with tempfile.TemporaryDirectory(prefix="trackline-request-path-") as tmp:
            results.append((which, _timed_in_child(which, raw, args.requests, tmp)))
    for which, (request_us, access_us) in results:
        print(f"({which}) {request_us:7.1f} us per request, of which the access line {access_us:5.1f} us")
    return 0


def _timed_in_child(which: str, raw: bytes, requests: int, tmp: str) -> tuple[float, float]:
    """Server ``which`` timed in a forked child (so each has its own logging setup): per request, and the access
    line alone (``log.access`` of one prepared request, repeated)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        worker, handlers = server(which, Path(tmp))
        batch = batches(handlers, lambda: request(worker, raw))
        batch()  # warm
        request_us = per_request_us(batch, requests)
        access_us = per_request_us(_access_lines(worker, handlers, raw), requests)
        os.write(write, f"{request_us} {access_us}".encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as reader:
        text = reader.read()
    _, status = os.waitpid(pid, 0)
    if status or not text:
        raise SystemExit(f"({which}) could not be timed: see its error above")
    request_us, access_us = map(float, text.split())
    return request_us, access_us


def _access_lines(worker: Worker, handlers: list[logging.Handler], raw: bytes) -> Callable[[], None]:
    """A batch of access lines of one request, in its scope (as gunicorn writes it: before ``post_request``)."""
    cfg = worker.cfg
    req = next(RequestParser(cfg, iter([raw]), CLIENT))
    resp, environ = wsgi.create(req, NullSocket(), CLIENT, SERVER, cfg)
    for chunk in worker.wsgi(environ, resp.start_response):
        resp.write(chunk)
    took = datetime.now() - datetime.now()
    return batches(handlers, lambda: worker.log.access(resp, req, environ, took))


if __name__ == "__main__":
    sys.exit(main())
