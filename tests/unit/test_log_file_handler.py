"""WatchedAppendFileHandler: whole JSON lines, safe across logrotate renames, USR1 and fork; coalesced under gevent."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import gevent
import pytest
from gunicorn.glogging import Logger as GunicornLogger

from support.processes import run_python
from trackline.logs import JsonFormatter, WatchedAppendFileHandler
from trackline.logs.handlers import MAX_PENDING_LINES


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "app.log"


@pytest.fixture
def logger(log_path: Path) -> Iterator[logging.Logger]:
    """A named logger (as gunicorn's USR1 handling requires) writing JSON lines through the handler."""
    handler = WatchedAppendFileHandler(str(log_path), encoding="utf-8")
    handler.setFormatter(JsonFormatter(json_ensure_ascii=False))
    log = logging.getLogger(f"test.file_handler.{log_path.parent.name}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    yield log
    log.removeHandler(handler)
    handler.close()


def messages(path: Path) -> list[str]:
    """The ``message`` of every line of ``path``; every line must be a whole JSON object."""
    return [json.loads(line)["message"] for line in path.read_bytes().decode("utf-8").splitlines()]


def test_lines_are_utf8_json_and_the_file_honours_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "new.log"
    handler = WatchedAppendFileHandler(str(path), delay=True)
    handler.setFormatter(JsonFormatter(json_ensure_ascii=False))
    assert not path.exists()  # delay: created by the first line
    old_umask = os.umask(0o027)  # the systemd unit's UMask
    try:
        handler.handle(logging.makeLogRecord({"msg": "héllo 中文 😀", "levelno": 20, "levelname": "INFO"}))
    finally:
        os.umask(old_umask)
        handler.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.read_bytes().count(b"\n") == 1
    assert messages(path) == ["héllo 中文 😀"]


def test_a_renamed_file_keeps_its_lines_and_the_next_line_goes_to_the_new_file(
        logger: logging.Logger, log_path: Path) -> None:
    logger.info("before")
    log_path.rename(log_path.with_name("app.log.1"))
    logger.info("first after rename")  # creates the path anew
    log_path.rename(log_path.with_name("app.log.2"))
    log_path.write_text("")  # another process (a second worker) recreated it first
    logger.info("second rename")
    assert messages(log_path) == ["second rename"]
    log_path.unlink()  # removed outright: recreated too
    logger.info("after unlink")
    logger.info("again")
    assert messages(log_path.with_name("app.log.1")) == ["before"]
    assert messages(log_path.with_name("app.log.2")) == ["first after rename"]
    assert messages(log_path) == ["after unlink", "again"]


def test_gunicorn_usr1_reopen(logger: logging.Logger, log_path: Path) -> None:
    logger.info("before")
    log_path.rename(log_path.with_name("app.log.1"))
    # gunicorn's own code, as its master and workers run it on USR1: close(), then stream = _open()
    GunicornLogger.reopen_files(SimpleNamespace(cfg=SimpleNamespace(capture_output=False)))  # type: ignore[arg-type]
    assert log_path.exists()
    logger.info("after")
    assert messages(log_path.with_name("app.log.1")) == ["before"]
    assert messages(log_path) == ["after"]


def test_a_line_longer_than_64_kib_is_written_whole_even_in_partial_writes(
        logger: logging.Logger, log_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = "x" * 70_000 + "é"
    logger.info(big)
    real_write = os.write
    sizes: list[int] = []

    def partial_write(fd: int, data: bytes) -> int:  # what a signal or a nearly full disk can do
        sizes.append(real_write(fd, data[:4096]))
        return sizes[-1]

    monkeypatch.setattr(os, "write", partial_write)
    logger.info(big)
    logger.info("short")
    monkeypatch.undo()
    assert len(sizes) > 17  # the 70 KB line did take several writes
    assert messages(log_path) == [big, big, "short"]


def _append_lines(logger: logging.Logger, worker: int, count: int) -> None:
    for number in range(count):
        logger.info("%d-%d %s", worker, number, "y" * (number * 97 % 9000))


def test_forked_processes_sharing_the_file_write_whole_lines(logger: logging.Logger, log_path: Path) -> None:
    logger.info("opened by the parent")  # as gunicorn's master opens it before forking workers
    fork = multiprocessing.get_context("fork")
    workers = [fork.Process(target=_append_lines, args=(logger, worker, 1500)) for worker in range(2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    written = [message.split(" ")[0] for message in messages(log_path)[1:]]
    assert sorted(written) == sorted(f"{worker}-{number}" for worker in range(2) for number in range(1500))


# Under gevent: lines logged by request greenlets are written at the end of the loop's iteration.

@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every ``os.write`` the handler makes (still written to the file)."""
    real_write = os.write
    seen: list[bytes] = []

    def spy(fd: int, data: bytes) -> int:
        seen.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", spy)
    return seen


def test_lines_of_many_greenlets_are_written_whole_in_order_by_one_write(
        logger: logging.Logger, log_path: Path, writes: list[bytes]) -> None:
    def request(number: int) -> None:
        logger.info("request %d", number)
        assert not log_path.exists() or f"request {number}" not in log_path.read_text()  # not yet: pending

    gevent.joinall([gevent.spawn(request, number) for number in range(50)], raise_error=True)
    gevent.idle()  # the loop turns: the write scheduled for it runs, as in a worker
    assert messages(log_path) == [f"request {number}" for number in range(50)]
    assert len(writes) == 1


def test_coalesce_false_writes_each_line_as_it_is_logged(log_path: Path, writes: list[bytes]) -> None:
    handler = WatchedAppendFileHandler(str(log_path), coalesce=False)
    handler.setFormatter(JsonFormatter())

    def request(number: int) -> None:
        handler.handle(logging.makeLogRecord({"msg": f"request {number}"}))
        assert messages(log_path)[-1] == f"request {number}"  # already in the file

    gevent.joinall([gevent.spawn(request, number) for number in range(5)], raise_error=True)
    handler.close()
    assert len(writes) == 5


def test_pending_lines_are_written_by_close_and_go_to_the_file_the_path_names_then(
        logger: logging.Logger, log_path: Path) -> None:
    logger.info("written before")  # the main greenlet writes at once
    assert messages(log_path) == ["written before"]

    def request() -> None:
        logger.info("pending")
        log_path.rename(log_path.with_name("app.log.1"))  # logrotate runs before the loop writes
        for handler in logger.handlers:
            handler.close()  # what gunicorn's USR1, a reload and logging.shutdown at exit do

    gevent.spawn(request).get()
    assert messages(log_path.with_name("app.log.1")) == ["written before"]
    assert messages(log_path) == ["pending"]


def test_a_greenlet_that_never_yields_writes_every_max_pending_lines(
        logger: logging.Logger, log_path: Path, writes: list[bytes]) -> None:
    def busy_request() -> None:
        for number in range(MAX_PENDING_LINES + 10):
            logger.info("line %d", number)
        assert len(messages(log_path)) == MAX_PENDING_LINES  # the first batch, without yielding

    gevent.spawn(busy_request).get()
    gevent.idle()
    assert len(messages(log_path)) == MAX_PENDING_LINES + 10
    assert len(writes) == 2


def test_a_fork_while_lines_wait_leaves_them_to_the_parent(logger: logging.Logger, log_path: Path) -> None:
    def request() -> None:
        logger.info("waiting at the fork")
        pid = os.fork()
        if pid == 0:  # the child writes what it has, as its exit would, then leaves without pytest's teardown
            for handler in logger.handlers:
                handler.close()
            os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0

    gevent.spawn(request).get()
    gevent.idle()
    assert messages(log_path) == ["waiting at the fork"]


MONKEY_PATCHED_WORKER = """
import logging, logging.config, sys, threading
from pathlib import Path
log_file = Path(sys.argv[1])
logging.config.dictConfig({"version": 1, "root": {"level": "INFO", "handlers": ["file"]},  # as gunicorn's master
                           "handlers": {"file": {"class": "trackline.logs.WatchedAppendFileHandler",
                                                 "filename": str(log_file)}}})
handler = logging.root.handlers[0]
from gevent import monkey; monkey.patch_all()  # as the gevent worker, after the fork
import gevent
real_sleep = monkey.get_original("time", "sleep")

def thread_holding_the_lock():  # what Handler.handle does around emit in a real thread (gevent's threadpool)
    with handler.lock:
        real_sleep(0.3)

def request():
    logging.info("from a request")  # waits for the loop's turn
    gevent.get_hub().threadpool.spawn(thread_holding_the_lock)
    real_sleep(0.1)  # the thread now holds the lock when the loop turns

gevent.spawn(request).get()
gevent.sleep(0.5)
assert log_file.read_text().count("from a request") == 1, log_file.read_text()
logging.info("from the main greenlet")  # written at once: nothing is left waiting
assert "from the main greenlet" in log_file.read_text()
"""


def test_in_a_monkey_patched_worker_a_thread_holding_the_lock_only_delays_the_write(log_path: Path) -> None:
    done = run_python(MONKEY_PATCHED_WORKER, str(log_path))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("when", ["before the write", "after the write"])
def test_a_signal_handlers_exit_during_a_write_neither_loses_nor_repeats_lines(
        logger: logging.Logger, log_path: Path, monkeypatch: pytest.MonkeyPatch, when: str) -> None:
    """gunicorn's worker abort is ``sys.exit(1)`` in a signal handler, which runs right after any call returns."""
    handler = logger.handlers[0]
    real_write, real_reopen = os.write, handler._reopen_if_moved  # type: ignore[attr-defined]
    fired: list[str] = []

    def exit_once() -> None:
        if not fired:
            fired.append(when)
            raise SystemExit(1)

    def reopen_then_exit() -> None:
        real_reopen()
        exit_once()

    def write_then_exit(fd: int, data: bytes) -> int:
        written = real_write(fd, data)
        exit_once()
        return written

    if when == "before the write":
        monkeypatch.setattr(handler, "_reopen_if_moved", reopen_then_exit)
    else:
        monkeypatch.setattr(os, "write", write_then_exit)
    with pytest.raises(SystemExit):
        logger.info("the last line")
    monkeypatch.undo()
    handler.close()  # what logging.shutdown does at exit
    assert fired == [when]
    assert messages(log_path) == ["the last line"]


HUB_THAT_NEVER_TURNS = """
import logging, sys, threading
import gevent
from greenlet import getcurrent
from trackline.logs import WatchedAppendFileHandler
log = logging.getLogger("t"); log.propagate = False; log.setLevel(logging.INFO)
log.addHandler(WatchedAppendFileHandler(sys.argv[1]))

def contents():
    return open(sys.argv[1]).read().splitlines()

main = getcurrent()
def request():  # logs, then control goes straight back to the main greenlet
    log.info("from a request")
    main.switch()
gevent.spawn(request); gevent.sleep(0)
gevent.get_hub().destroy(destroy_loop=True)  # the loop turn that would write never comes
log.info("from the main greenlet")
assert contents() == ["from a request", "from the main greenlet"], contents()

def thread_main():  # a thread's own hub, which stops turning when the thread ends
    gevent.spawn(lambda: log.info("from a thread's greenlet")); gevent.sleep(0)
thread = threading.Thread(target=thread_main); thread.start(); thread.join()
log.info("from the main thread")
assert contents()[2:] == ["from a thread's greenlet", "from the main thread"], contents()
"""


def test_lines_waiting_for_a_hub_that_never_turns_go_out_with_the_next_line_logged_elsewhere(
        log_path: Path) -> None:
    done = run_python(HUB_THAT_NEVER_TURNS, str(log_path))
    assert done.returncode == 0, done.stderr
