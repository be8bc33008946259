"""A lean drop-in for ``logging.handlers.WatchedFileHandler``: one ``os.write`` per line, rename-safe.

``WatchedFileHandler`` writes through a ``TextIOWrapper`` and flushes after every line (two lock round trips
and a buffered-text layer per line). This handler opens the file ``O_APPEND`` unbuffered and writes each
encoded line with a single ``write`` system call; like ``WatchedFileHandler`` it stats the path before every
line and reopens it when logrotate has renamed or removed it, so no line goes to a file that gzip may take.
"""

from __future__ import annotations

import logging
import os
from typing import BinaryIO


class WatchedAppendFileHandler(logging.FileHandler):
    """Appends each formatted line + ``"\\n"`` with one ``os.write`` and reopens the path after a rotation.

    A ``logging.FileHandler`` subclass, so gunicorn's USR1 (``stream = handler._open()``) reopens it; the
    file is created with mode 0o666 less the umask, as ``open()`` does. Records are written whole even
    when the kernel accepts part of a line; a shared ``O_APPEND`` descriptor is safe across forked workers.
    """

    terminator = "\n"

    def __init__(self, filename: str | os.PathLike[str], encoding: str | None = "utf-8", delay: bool = False,
                 errors: str | None = None) -> None:
        self._identity = (-1, -1)  # (st_dev, st_ino) of the open file
        super().__init__(filename, "a", encoding or "utf-8", delay, errors)

    def _open(self) -> BinaryIO:  # type: ignore[override]
        stream = open(self.baseFilename, "ab", buffering=0)  # O_WRONLY | O_APPEND | O_CREAT, 0o666 & ~umask
        status = os.fstat(stream.fileno())
        self._identity = (status.st_dev, status.st_ino)
        return stream

    def _reopen_if_moved(self) -> None:
        """Reopen the path when it no longer names the open file (renamed or deleted by logrotate)."""
        try:
            status = os.stat(self.baseFilename)
        except FileNotFoundError:
            status = None
        if status is None or (status.st_dev, status.st_ino) != self._identity:
            stream, self.stream = self.stream, None
            stream.close()
            self.stream = self._open()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self.stream is None:  # delay=True, or closed: (re)open, as FileHandler does in mode "a"
                self.stream = self._open()
            else:
                self._reopen_if_moved()
            data = (self.format(record) + self.terminator).encode(self.encoding, self.errors or "backslashreplace")
            fd = self.stream.fileno()
            written = os.write(fd, data)
            while written < len(data):  # a partial write (signal, full disk): the rest, never a gap
                data = data[written:]
                written = os.write(fd, data)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
