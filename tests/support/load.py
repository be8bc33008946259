"""The one threaded load generator (``Load``), and ``concurrently`` for a burst of requests at once."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, TypeVar

from support.waiting import wait_until

Item = TypeVar("Item")
Result = TypeVar("Result")


def concurrently(function: Callable[[Item], Result], items: Iterable[Item], threads: int) -> list[Result]:
    """``function`` of each item, run by ``threads`` threads at once; the results in the items' order (the
    first exception raised is raised here)."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(function, items))


class Answer(NamedTuple):
    """One request of a load: the ID it sent, the status and the X-Tracking-ID it got back, the body."""

    tracking_id: str
    status: int
    echoed: str | None
    body: bytes


class Load:
    """``clients`` threads sending ``method path`` to 127.0.0.1:``port``, one request for each ID of ``ids`` (as
    its X-Tracking-ID), at most ``rate`` requests/s between them, until ``ids`` run out or the load stops.

    Each client keeps one connection open (``keep_alive``), or opens one per request (as urllib does: a
    server's reload or stop then closes no connection a request is still to use). ``answers`` holds what came
    back; ``sent`` counts the IDs taken so far. With ``expect``, an answer whose status is another or that does
    not carry its own ID back is put in ``errors``; an exception ends its client with an entry in ``errors``,
    unless it is one of ``tolerate`` (a server the test stops on purpose): then the client tries the next ID.
    As a context manager it starts the clients and stops them at the end of the block, failing the test if
    one has an error.
    """

    def __init__(self, port: int, ids: Iterable[str], *, clients: int = 4, rate: float | None = None,
                 method: str = "GET", path: str = "/api/names", keep_alive: bool = True,
                 expect: int | None = None, timeout: float = 30.0,
                 tolerate: tuple[type[BaseException], ...] = ()) -> None:
        self.port, self.rate, self.method, self.path = port, rate, method, path
        self.keep_alive, self.expect, self.timeout, self.tolerate = keep_alive, expect, timeout, tolerate
        self.answers: list[Answer] = []
        self.errors: list[str] = []
        self.sent = 0
        self._ids = iter(ids)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]
        self.started = 0.0

    def start(self) -> Load:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.stop()
        if exc_type is None:
            assert not self.errors, self.errors[:5]

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the clients after their requests in flight."""
        self._stop.set()
        self.join(timeout)

    def join(self, timeout: float) -> None:
        """Wait for the clients to end (they do once ``ids`` run out, or once stopped)."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self._threads), (
            f"load clients not done in {timeout}s ({len(self.answers)} answered)")

    def wait_sent(self, count: int, timeout: float = 120.0) -> None:
        """Wait until ``count`` requests are sent; fail if a client has an error."""
        wait_until(lambda: self.sent >= count or self.errors, f"{count} requests sent", timeout=timeout)
        assert not self.errors, self.errors[:5]

    def _next(self) -> tuple[int, str | None]:
        with self._lock:
            tracking_id = next(self._ids, None)
            index = self.sent
            self.sent += tracking_id is not None
        return index, tracking_id

    def _client(self) -> None:
        connection: http.client.HTTPConnection | None = None
        try:
            while not self._stop.is_set():
                index, tracking_id = self._next()
                if tracking_id is None:
                    return
                if self.rate:
                    time.sleep(max(0.0, self.started + index / self.rate - time.monotonic()))
                if connection is None:
                    connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                headers = {"X-Tracking-ID": tracking_id, **({} if self.keep_alive else {"Connection": "close"})}
                try:
                    connection.request(self.method, self.path, headers=headers)
                    response = connection.getresponse()
                    answer = Answer(tracking_id, response.status, response.getheader("X-Tracking-ID"),
                                    response.read())
                except self.tolerate:
                    connection.close()
                    connection = None
                    continue
                if not self.keep_alive:
                    connection.close()
                    connection = None
                self.answers.append(answer)
                if self.expect is not None and (answer.status, answer.echoed) != (self.expect, tracking_id):
                    self.errors.append(f"{tracking_id}: {answer.status} {answer.echoed}")
        except Exception as exc:  # reported by the test, which must not pass with a failed client
            self.errors.append(f"client failed: {exc!r}")
        finally:
            if connection is not None:
                connection.close()
