"""Signals to the gunicorn master: HUP reloads both YAML files, TERM drains, USR1 (or a bare rename) reopens logs."""

from __future__ import annotations

import itertools
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support.conf import edit_yaml
from support.http import raw_exchange
from support.load import Load
from support.logs import assert_contract, read_json_lines
from support.processes import open_files
from support.server import Server
from support.waiting import wait_until

LOAD_THREADS = 4
LOG_NAMES = ("app.log", "access.log", "error.log")


def error_messages(server: Server) -> list[str]:
    return [r["message"] for r in server.logs("error.log")]


def hup_and_wait(server: Server) -> None:
    """HUP the master; wait until every old worker has exited and the new ones serve."""
    old = server.wait_for_workers()
    server.signal(signal.SIGHUP)
    wait_until(lambda: not old & server.live_workers(), "the old workers to exit")
    assert not old & server.wait_for_workers()


def health_check(server: Server) -> str:
    """GET /api/health (logs INFO "Health check"); its tracking ID."""
    response = server.get("/api/health")
    assert response.status == 200
    return response.headers["X-Tracking-ID"]


def messages_of(path: Path, tracking_id: str) -> list[str]:
    return [r["message"] for r in read_json_lines(path) if r["tracking_id"] == tracking_id]


def load(server: Server) -> Load:
    """A few clients looping GET /api/names, each request on a connection of its own, until the block ends."""
    ids = (f"hup-load-{n:06d}" for n in itertools.count())
    return Load(server.port, ids, clients=LOAD_THREADS, keep_alive=False, timeout=10)


def test_hup_under_load_applies_a_new_log_level_with_zero_failed_requests(server: Server) -> None:
    before = health_check(server)
    with load(server) as requests:
        time.sleep(1)
        edit_yaml(server.conf_dir / "logging.yaml", lambda config: config["root"].update(level="WARNING"))
        served_before_hup = len(requests.answers)
        hup_and_wait(server)
        served_during_reload = len(requests.answers) - served_before_hup
        time.sleep(1)
        after = health_check(server)
    assert server.stop() == 0
    assert requests.errors == []
    statuses = [a.status for a in requests.answers]
    assert set(statuses) == {200} and served_during_reload > 0, (len(statuses), served_during_reload)
    app_log = server.log_dir / "app.log"
    assert messages_of(app_log, before) == ["Health check"]
    assert messages_of(app_log, after) == []  # INFO is below the new root level
    assert [r["status_code"] for r in server.logs("access.log") if r["tracking_id"] == after] == [200]
    assert "Handling signal: hup" in error_messages(server)


def test_hup_applies_a_new_log_path(server: Server) -> None:
    def move_app_log(config: dict[str, Any]) -> None:
        handler = config["handlers"]["app_file"]
        handler["filename"] = handler["filename"].replace("/app.log", "/app-reloaded.log")

    before = health_check(server)
    edit_yaml(server.conf_dir / "logging.yaml", move_app_log)
    hup_and_wait(server)
    after = health_check(server)
    assert server.stop() == 0
    assert messages_of(server.log_dir / "app.log", before) == ["Health check"]
    assert messages_of(server.log_dir / "app.log", after) == []
    assert messages_of(server.log_dir / "app-reloaded.log", after) == ["Health check"]
    for record in read_json_lines(server.log_dir / "app-reloaded.log"):
        assert_contract(record)


@pytest.mark.parametrize(("broken", "edit", "reason"), [
    ("gunicorn.yaml", "version: 1\nbind: [unclosed\n  - {:\n", "invalid YAML"),
    ("logging.yaml", "version: 1\nbind: [unclosed\n  - {:\n", "invalid YAML"),
    # valid YAML and types, but gunicorn's master would die loading the class on HUP
    ("gunicorn.yaml", "worker_class: geventt\n", "worker_class: cannot load 'geventt'"),
], ids=["gunicorn.yaml", "logging.yaml", "worker_class"])
def test_hup_with_broken_yaml_keeps_serving_on_the_old_config(server: Server, broken: str, edit: str,
                                                               reason: str) -> None:
    path = server.conf_dir / broken
    path.write_text(edit)
    master = server.process.pid
    workers = server.wait_for_workers()
    server.signal(signal.SIGHUP)
    refused = wait_until(lambda: [r for r in server.logs("error.log") if "reload refused" in r["message"]],
                         "the refused reload's line")
    assert len(refused) == 1 and refused[0]["level"] == "ERROR"
    assert server.wait_for_workers() == workers  # the old workers go on serving
    assert str(path) in refused[0]["message"] and reason in refused[0]["message"]
    assert server.get("/api/names").status == 200
    still_logging = health_check(server)  # the old logging config still writes INFO to app.log
    assert server.process.poll() is None
    assert (server.root / "run" / "trackline.pid").read_text().strip() == str(master)
    assert server.stop() == 0
    assert messages_of(server.log_dir / "app.log", still_logging) == ["Health check"]


def _refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_term_lets_an_in_flight_request_complete(make_server: Callable[..., Server]) -> None:
    server = make_server()
    # gunicorn drops a request whose rest does not come within keepalive (5 s): ample, unless the host stalls.
    edit_yaml(server.conf_dir / "gunicorn.yaml", lambda settings: settings.update(keepalive=60))
    server.start()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        # A first request on the connection proves a worker holds it; the second is half sent at TERM.
        assert raw_exchange(sock, b"GET /api/names HTTP/1.1\r\nHost: t\r\n\r\n").status == 200
        sock.sendall(b"GET /api/users HTTP/1.1\r\nHost: t\r\n")
        server.signal(signal.SIGTERM)
        wait_until(lambda: _refuses_connections(server.port), "the server to stop accepting")
        response = raw_exchange(sock, b"Connection: close\r\n\r\n")
    assert response.status == 200
    assert b'"name": "Alice"' in response.body
    assert server.process.wait(timeout=40) == 0  # graceful_timeout is 30 s
    messages = error_messages(server)
    assert "Shutting down: Master" in messages
    assert not [m for m in messages if "graceful timeout" in m]
    access = [r for r in server.logs("access.log") if r["tracking_id"] == response.headers["X-Tracking-ID"]]
    assert [(r["request_path"], r["status_code"]) for r in access] == [("/api/users", 200)]


def _rename_logs_then_request(server: Server, names: tuple[str, ...], reopen: Callable[[], None]) -> tuple[str, str]:
    """A request, every file in ``names`` renamed to ``*.1``, ``reopen()``, another request; both tracking IDs."""
    server.wait_for_workers()
    before = health_check(server)
    wait_until(lambda: before in {r["tracking_id"] for r in server.logs("access.log")},
               "the access line (gunicorn writes it after the response)")
    for name in names:
        (server.log_dir / name).rename(server.log_dir / f"{name}.1")
    reopen()
    after = health_check(server)
    assert server.stop() == 0
    for name in names:
        for record in [*read_json_lines(server.log_dir / f"{name}.1"), *server.logs(name)]:
            assert_contract(record)
    return before, after


def _ids(path: Path) -> set[str | None]:
    return {r["tracking_id"] for r in read_json_lines(path)}


def test_renamed_log_files_are_reopened_without_a_signal(server: Server) -> None:
    """The shipped handlers notice logrotate's rename themselves: the next line goes to a new file."""
    before, after = _rename_logs_then_request(server, LOG_NAMES, lambda: None)
    for name in ("app.log", "access.log"):
        assert before in _ids(server.log_dir / f"{name}.1") and after not in _ids(server.log_dir / f"{name}.1")
        assert _ids(server.log_dir / name) == {after}, name
    assert any(r["message"].startswith("Starting gunicorn") for r in read_json_lines(server.log_dir / "error.log.1"))
    assert any(r["message"] == "Shutting down: Master" for r in server.logs("error.log"))


def test_usr1_reopens_plain_file_handlers(make_server: Callable[..., Server]) -> None:
    """USR1 is what reopens handlers that cannot see a rename (plain FileHandler) on gunicorn's loggers."""
    server = make_server()

    def plain_file_handlers(config: dict[str, Any]) -> None:
        for handler in ("access_file", "error_file"):
            config["handlers"][handler]["class"] = "logging.FileHandler"

    edit_yaml(server.conf_dir / "logging.yaml", plain_file_handlers)
    server.start()
    processes = {server.process.pid, *server.live_workers()}
    renamed = {str(server.log_dir / f"{name}.1") for name in ("access.log", "error.log")}

    def usr1() -> None:
        server.signal(signal.SIGUSR1)  # the master reopens its files, then signals the workers to
        wait_until(lambda: not any(open_files(pid) & renamed for pid in processes), "every process to reopen")

    before, after = _rename_logs_then_request(server, ("access.log", "error.log"), usr1)
    assert before in _ids(server.log_dir / "access.log.1") and after not in _ids(server.log_dir / "access.log.1")
    assert _ids(server.log_dir / "access.log") == {after}
    # the master logs the signal before it reopens: that line is the renamed file's last master line
    assert "Handling signal: usr1" in [r["message"] for r in read_json_lines(server.log_dir / "error.log.1")]
    assert "Shutting down: Master" in [r["message"] for r in server.logs("error.log")]


#: Operator hooks for gunicorn.yaml: post_fork marks the worker as booting and takes a while, as a slow
#: import would; post_worker_init marks it as booted.
SLOW_BOOT_HOOKS = '''
import pathlib, time

def post_fork(arbiter, worker):
    pathlib.Path(f"{worker.pid}.booting").touch()
    time.sleep(2)

def post_worker_init(worker):
    pathlib.Path(f"{worker.pid}.booted").touch()
'''


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
def test_signal_during_worker_boot_is_not_lost(make_server: Callable[..., Server], sig: signal.Signals) -> None:
    """A stop or reload that reaches the master while a worker boots (``systemctl stop`` right after a start,
    or during a max_requests restart) is acted on once the worker has booted, not after graceful_timeout."""
    server = make_server(env={"TRACKLINE_WORKERS": "1"})
    (server.root / "slow_boot.py").write_text(SLOW_BOOT_HOOKS)
    server.env["PYTHONPATH"] = str(server.root)
    edit_yaml(server.conf_dir / "gunicorn.yaml", lambda settings: settings.update(
        graceful_timeout=120, post_fork="slow_boot.post_fork", post_worker_init="slow_boot.post_worker_init"))
    server.launch()
    [booting] = wait_until(lambda: list(server.root.glob("*.booting")), "a worker in its post_fork hook")
    worker = int(booting.stem)
    server.signal(sig)  # the master passes TERM on to the booting worker (HUP: once the new worker is up)
    wait_until(lambda: f"Worker exiting (pid: {worker})" in error_messages(server), "the booting worker to exit",
               timeout=60)  # graceful_timeout is 120 s: a lost signal fails here
    assert (server.root / f"{worker}.booted").exists()  # the operator's hooks still run
    messages = error_messages(server)
    assert not [m for m in messages if "graceful timeout" in m.lower() or "SIGKILL" in m], messages
    if sig == signal.SIGTERM:
        assert server.process.wait(timeout=30) == 0
    else:
        assert server.process.poll() is None and len(server.live_workers()) == 1


#: A TRACKING_ID_GENERATOR (``load_probe.make_id``, resolved while the app is created) that records, once per
#: process, which signals that process had blocked then; the generator itself is uuid.uuid4.
LOAD_PROBE = '''
import os, pathlib, uuid

def __getattr__(name):
    if name != "make_id":
        raise AttributeError(name)
    status = pathlib.Path("/proc/self/status").read_text().splitlines()
    probe = pathlib.Path(f"{os.getpid()}.sigblk")
    if not probe.exists():
        probe.write_text(next(line.split()[1] for line in status if line.startswith("SigBlk:")))
    return uuid.uuid4
'''


def test_worker_loads_the_app_with_no_signal_held(make_server: Callable[..., Server]) -> None:
    """Signals are held only until the worker's own handlers are in place, not while the app loads: a QUIT
    during a slow import acts at once, and a process the app starts then can still be stopped."""
    server = make_server(env={"TRACKLINE_WORKERS": "1"})
    (server.root / "load_probe.py").write_text(LOAD_PROBE)
    server.env["PYTHONPATH"] = str(server.root)
    edit_yaml(server.conf_dir / "app.yaml", lambda app: app.update(TRACKING_ID_GENERATOR="load_probe.make_id"))
    server.start()
    [worker] = server.live_workers()
    assert (server.root / f"{worker}.sigblk").read_text() == "0" * 16

