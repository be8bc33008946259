"""A lean drop-in for ``logging.handlers.WatchedFileHandler``: whole lines by ``os.write``, rename-safe.

``WatchedFileHandler`` writes through a ``TextIOWrapper`` and flushes after every line (two lock round trips
and a buffered-text layer per line). This handler opens the file ``O_APPEND`` unbuffered and writes encoded
lines with one ``write`` system call; like ``WatchedFileHandler`` it stats the path before writing and reopens
it when logrotate has renamed or removed it, so no line goes to a file that gzip may take.

In a gevent worker, the lines that request greenlets log are written together once the loop turns
(``coalesce``): one ``stat`` and one ``write`` per file per loop turn instead of per line.
"""

from __future__ import annotations

import logging
import os
import weakref
from typing import Any, BinaryIO

from trackline.logs.eventloop import run_on_next_turn, running_hub

#: Pending lines that make a coalescing handler write at once rather than wait for the loop.
MAX_PENDING_LINES = 1024


class WatchedAppendFileHandler(logging.FileHandler):
    """Appends each formatted line + ``"\\n"`` with ``os.write`` and reopens the path after a rotation.

    A ``logging.FileHandler`` subclass, so gunicorn's USR1 (``close()``, ``stream = handler._open()``) reopens
    it; the file is created with mode 0o666 less the umask, as ``open()`` does. Lines are written whole even
    when the kernel accepts part of a write; a shared ``O_APPEND`` descriptor is safe across forked workers.

    ``coalesce`` (default true): a line logged by a greenlet that gevent's hub runs waits until the loop
    turns (at most ``MAX_PENDING_LINES`` wait), then goes out with the others in one ``write``. ``flush()``,
    ``close()`` and ``logging.shutdown`` at exit write what waits; a write that fails loses its lines and
    says so on stderr, as any logging handler does. Only a process killed outright (SIGKILL) loses the
    lines of its last loop turn. ``coalesce: false`` writes every line at once.
    """

    terminator = "\n"

    def __init__(self, filename: str | os.PathLike[str], encoding: str | None = "utf-8", delay: bool = False,
                 errors: str | None = None, coalesce: bool = True) -> None:
        self._identity = (-1, -1)  # (st_dev, st_ino) of the open file
        self._pending: list[bytes] = []
        self._flush_hub: Any = None  # the gevent hub whose next loop turn will write the pending lines
        self.coalesce = coalesce
        super().__init__(filename, "a", encoding or "utf-8", delay, errors)
        _handlers.add(self)

    def _open(self) -> BinaryIO:  # type: ignore[override]
        stream = open(self.baseFilename, "ab", buffering=0)  # O_WRONLY | O_APPEND | O_CREAT, 0o666 & ~umask
        status = os.fstat(stream.fileno())
        self._identity = (status.st_dev, status.st_ino)
        return stream

    def _reopen_if_moved(self) -> None:
        """Open the path if it is not open, or reopen it when it no longer names the open file."""
        if self.stream is None:  # delay=True, or closed: (re)open, as FileHandler does in mode "a"
            self.stream = self._open()
            return
        try:
            status = os.stat(self.baseFilename)
        except FileNotFoundError:
            status = None
        if status is None or (status.st_dev, status.st_ino) != self._identity:
            stream, self.stream = self.stream, None
            stream.close()
            self.stream = self._open()

    def _write_pending(self) -> None:
        """Write the pending lines with one ``write``, looping on a partial write (the rest, never a gap).

        A failed write raises and its lines are gone. A signal handler's exception (``SystemExit`` on a worker
        abort) that comes before the write starts leaves the lines pending for ``logging.shutdown``; once the
        write has started they count as written, so no line is ever written twice.
        """
        pending, self._pending = self._pending, []  # no call in between: no signal handler can run here
        writing = False
        try:
            data = b"".join(pending)
            self._reopen_if_moved()
            fd = self.stream.fileno()
            writing = True
            while data:
                data = data[os.write(fd, data):]
        except BaseException as exc:
            if not writing and not isinstance(exc, Exception):
                self._pending[:0] = pending
            raise

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) + self.terminator).encode(self.encoding, self.errors or "backslashreplace")
            self._pending.append(line)
            hub = running_hub() if self.coalesce else None
            if hub is None or len(self._pending) >= MAX_PENDING_LINES:
                self._write_pending()  # with any lines still waiting for a loop turn, in order
            elif hub is not self._flush_hub:  # no write scheduled on this hub yet
                run_on_next_turn(self.flush)
                self._flush_hub = hub
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Write the pending lines (on the loop's turn; also ``logging.shutdown`` and ``close``)."""
        self.acquire()
        try:
            self._flush_hub = None
            if self._pending:
                lines = len(self._pending)
                try:
                    self._write_pending()
                except Exception:
                    self.handleError(logging.makeLogRecord({"msg": f"{lines} lines for {self.baseFilename}"}))
        finally:
            self.release()

    def close(self) -> None:
        self.flush()
        super().close()

    def _forget_pending(self) -> None:
        """In a forked child: the lines waiting at the fork are the parent's to write."""
        self._pending.clear()
        self._flush_hub = None


_handlers: weakref.WeakSet[WatchedAppendFileHandler] = weakref.WeakSet()


def _forget_pending_after_fork() -> None:
    for handler in list(_handlers):
        handler._forget_pending()


os.register_at_fork(after_in_child=_forget_pending_after_fork)
