"""A lean drop-in for ``logging.handlers.WatchedFileHandler``: whole lines by ``os.write``, rename-safe.

``WatchedFileHandler`` writes through a ``TextIOWrapper`` and flushes after every line (two lock round trips
and a buffered-text layer per line). This handler opens the file ``O_APPEND`` unbuffered and writes encoded
lines with one ``write`` system call; like ``WatchedFileHandler`` it stats the path before writing and reopens
it when logrotate has renamed or removed it, so no line goes to a file that gzip may take.

In a gevent worker, the lines that request greenlets log are written together once the loop turns
(``coalesce``): one ``stat`` and one ``write`` per file per loop turn instead of per line. A line is formatted
and queued without the handler's lock (in a gevent worker that lock is Python code, a few microseconds a
line); only writing takes it.

Faults (docs/faults.md): a write that fails or is cut short (a full disk) drops its lines, says so on stderr
once per episode, and the next write starts on a new line, so a torn fragment never swallows a whole line; a
log directory that was removed is made again; ``release_moved_files`` lets a process that seldom writes (the
gunicorn master) drop a renamed or deleted file so that its space is freed.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import weakref
from typing import Any, BinaryIO, NamedTuple

from trackline.logs.eventloop import run_on_next_turn, running_hub

#: Pending lines that make a coalescing handler write at once rather than wait for the loop.
MAX_PENDING_LINES = 1024

#: The mode of a log directory made again when nothing was known of it at start.
DEFAULT_DIRECTORY_MODE = 0o750

#: The mode a log file is created with (less the umask): the lines hold paths, IDs and tracebacks, not for every
#: user of the machine to read.
FILE_MODE = 0o640

#: How the path is opened: appending, readable (to check its end), never through a symbolic link put in its place.
_OPEN_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


class _Directory(NamedTuple):
    """A log directory's mode and owner, as found at start, to make it again with if it is removed."""

    mode: int
    uid: int
    gid: int

    @classmethod
    def of(cls, path: str) -> _Directory | None:
        try:
            status = os.stat(path)
        except OSError:
            return None
        return cls(status.st_mode & 0o7777, status.st_uid, status.st_gid)


class WatchedAppendFileHandler(logging.FileHandler):
    """Appends each formatted line + ``"\\n"`` with ``os.write`` and reopens the path after a rotation.

    A ``logging.FileHandler`` subclass, so gunicorn's USR1 (``close()``, ``stream = handler._open()``) reopens
    it; the file is created with mode 0o666 less the umask, as ``open()`` does. Lines are written whole even
    when the kernel accepts part of a write; a shared ``O_APPEND`` descriptor is safe across forked workers.

    ``coalesce`` (default true): a line logged by a greenlet that gevent's hub runs waits until the loop
    turns (at most ``MAX_PENDING_LINES`` wait), then goes out with the others in one ``write``. ``flush()``,
    ``close()`` and ``logging.shutdown`` at exit write what waits; a write that fails drops its lines and
    says so on stderr, once when failing starts and once, with the count dropped, when writing works again.
    Only a process killed outright (SIGKILL) loses the lines of its last loop turn. ``coalesce: false``
    writes every line at once.
    """

    terminator = "\n"
    stream: BinaryIO | None  # type: ignore[assignment]  # bytes, unbuffered: not FileHandler's text stream

    def __init__(self, filename: str | os.PathLike[str], encoding: str | None = "utf-8", delay: bool = False,
                 errors: str | None = None, coalesce: bool = True) -> None:
        self._identity = (-1, -1)  # (st_dev, st_ino) of the open file
        self._pending: list[bytes] = []
        self._flush_hub: Any = None  # the gevent hub whose next loop turn will write the pending lines
        self._failure: str | None = None  # why writing fails, during a failure episode
        self._dropped = 0  # lines dropped in this episode
        self.coalesce = coalesce
        self._directory = _Directory.of(os.path.dirname(os.path.abspath(filename)))
        super().__init__(filename, "a", encoding or "utf-8", delay, errors)
        _handlers.add(self)

    def _open(self) -> BinaryIO:  # type: ignore[override]
        """Open the path for appending (creating it, and its removed directory); readable, to check its end.

        ``O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW``, mode 0o640 less the umask, unbuffered; the handler keeps it
        open. A symbolic link in place of the file is refused (an ``OSError`` that says so): the service's user
        must not make the log writer append to a file it names.
        """
        try:
            fd = self._open_fd()
        except FileNotFoundError:
            self._make_directory()
            fd = self._open_fd()
        stream = open(fd, "a+b", buffering=0)  # noqa: SIM115 - kept open, closed by close()
        status = os.fstat(stream.fileno())
        self._identity = (status.st_dev, status.st_ino)
        return stream

    def _open_fd(self) -> int:
        try:
            return os.open(self.baseFilename, _OPEN_FLAGS, FILE_MODE)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise OSError(errno.ELOOP, "it is a symbolic link, which trackline does not write through",
                              self.baseFilename) from None
            raise

    def _make_directory(self) -> None:
        """Make the file's directory again (``rm -rf`` of the log dir) with the mode and owner it had at start."""
        path = os.path.dirname(self.baseFilename)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        found = self._directory
        try:
            os.mkdir(path, found.mode if found else DEFAULT_DIRECTORY_MODE)
        except FileExistsError:  # another process made it first
            return
        if found is not None:
            os.chmod(path, found.mode)  # mkdir's mode is masked by the umask
            if (found.uid, found.gid) != (os.geteuid(), os.getegid()):
                os.chown(path, found.uid, found.gid)  # as root (a service user's files are its own anyway)

    def _reopen_if_moved(self) -> int:
        """Open the path if it is not open, or reopen it when it no longer names the open file; its size."""
        if self.stream is not None:
            if (status := self._status_if_open()) is not None:
                return status.st_size
            self._close_stream()  # renamed or removed: the path is a new file (or none yet)
        stream = self.stream = self._open()  # delay=True, closed, or moved: (re)open, as FileHandler does in "a"
        return os.fstat(stream.fileno()).st_size

    def _status_if_open(self) -> os.stat_result | None:
        """The path's status while it still names the open file; ``None`` once it was renamed or deleted."""
        try:
            status = os.stat(self.baseFilename)
        except FileNotFoundError:
            return None
        return status if (status.st_dev, status.st_ino) == self._identity else None

    def _close_stream(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            stream.close()

    def release_if_moved(self) -> None:
        """Close the open file if the path no longer names it (renamed, deleted); the next line opens the path."""
        self.acquire()
        try:
            if self.stream is not None and self._status_if_open() is None:
                self._close_stream()
        finally:
            self.release()

    def _write_pending(self) -> None:
        """Write the pending lines with one ``write``, looping on a partial write (the rest, never a gap).

        A failed write drops its lines (``_failed``). After a failure, the next write starts with a newline
        if the file does not end with one (a write cut short by a full disk), so the fragment stays alone on
        its line. (Only then: ``stat`` can see a size inside another worker's write in progress, whose last
        byte is not its newline yet.) A signal handler's exception (``SystemExit`` on a worker abort) that
        comes before the write starts leaves the lines pending for ``logging.shutdown``; once the write has
        started they count as written, so no line is ever written twice.
        """
        waiting = self._pending  # lines are appended to it without the lock: take only those there now
        pending = waiting[:]
        del waiting[:len(pending)]  # (a signal handler's exception before this leaves them all waiting)
        data, sent, torn = b"", 0, False
        try:
            size = self._reopen_if_moved()
            assert self.stream is not None
            fd = self.stream.fileno()
            torn = self._failure is not None and size > 0 and os.pread(fd, 1, size - 1) != b"\n"
            data = b"".join([b"\n", *pending] if torn else pending)
            while sent < len(data):
                sent += os.write(fd, data[sent:])
        except OSError as exc:
            written = data[:sent].count(b"\n") - (torn and sent > 0)  # whole lines that made it before the failure
            self._failed(exc, len(pending) - written)
            return
        except BaseException as exc:
            if not data and not isinstance(exc, Exception):
                waiting[:0] = pending
            raise
        if self._failure is not None:
            self._resumed()

    def _failed(self, exc: OSError, lines: int) -> None:
        """Count ``lines`` as dropped; the first failure of an episode says so on stderr."""
        self._dropped += lines
        if self._failure is None:
            self._failure = exc.strerror or str(exc)
            self._report(logging.ERROR, f"cannot write {self.baseFilename}: {self._failure}; dropping its lines "
                         "until writing works again", error=self._failure)

    def _resumed(self) -> None:
        self._report(logging.WARNING, f"writing {self.baseFilename} again after {self._failure}: {self._dropped} "
                     "lines were dropped", error=self._failure, dropped_lines=self._dropped)
        self._failure, self._dropped = None, 0

    def _report(self, level: int, message: str, **fields: Any) -> None:
        """One line on stderr (the journal under systemd), formatted like this handler's lines."""
        record = logging.makeLogRecord({"name": __name__, "levelno": level, "levelname": logging.getLevelName(level),
                                        "msg": message, "log_file": self.baseFilename, **fields})
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # stderr closed or full too: nothing left to tell
            pass

    def handle(self, record: logging.LogRecord) -> bool | logging.LogRecord:  # type: ignore[override]
        """``logging.Handler.handle`` without its lock around ``emit``: a line is formatted and queued without it
        (``list.append`` is atomic), and the lock is taken only to write (``flush``). A record that a filter
        replaces (Python 3.12's filters may return one) is the one written."""
        kept = self.filter(record)
        if kept:
            self.emit(kept if isinstance(kept, logging.LogRecord) else record)
        return kept

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) + self.terminator).encode(self.encoding or "utf-8",
                                                                 self.errors or "backslashreplace")
            self._pending.append(line)
            hub = running_hub() if self.coalesce else None
            if hub is None or len(self._pending) >= MAX_PENDING_LINES:
                self.flush()  # with any lines still waiting for a loop turn, in order
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
                self._write_pending()
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


def release_moved_files() -> None:
    """Let every ``WatchedAppendFileHandler`` of this process drop a file that was renamed or deleted.

    A handler notices a rotation when it next writes; a process that seldom writes (gunicorn's master
    holds app.log and access.log open and never writes them) calls this now and then, so that deleting or
    compressing a rotated file frees its space.
    """
    for handler in list(_handlers):
        handler.release_if_moved()


os.register_at_fork(after_in_child=_forget_pending_after_fork)
