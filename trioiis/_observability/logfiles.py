"""Log files that can be reopened: ``access_log`` and ``error_log``.

A log rotator (logrotate without ``copytruncate``) renames the file, then sends SIGUSR1:
``reopen`` closes the renamed file and opens a new one at the configured path, so no line
is lost and none goes to the old file after the signal. The file's folder is created when
it is missing.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import TextIO

from .._errors import ConfigError

__all__ = ["LogFile", "ReopeningHandler"]


class LogFile:
    """A line-buffered text file opened for appending (or stderr for ``"-"``)."""

    def __init__(self, target: str | Path, what: str = "log") -> None:
        """Open it.

        Raises:
            ConfigError: the folder cannot be made or the file cannot be opened.
        """
        self.target = str(target)
        self.what = what
        self._file: TextIO = self._open()

    @property
    def is_stderr(self) -> bool:
        return self.target == "-"

    def _open(self) -> TextIO:
        if self.is_stderr:
            return sys.stderr
        path = Path(self.target)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return open(path, "a", encoding="utf-8", buffering=1)
        except OSError as exc:
            raise ConfigError(f"cannot open {self.what} {path}: {exc.strerror or exc}") from exc

    @property
    def is_new(self) -> bool:
        """Nothing was written to it yet (a header belongs at the top)."""
        return self.is_stderr or self._file.tell() == 0

    def write_line(self, line: str) -> None:
        """Best effort: a full disk loses the line, not the request."""
        with contextlib.suppress(OSError, ValueError):
            self._file.write(line + "\n")

    def reopen(self) -> None:
        """Open the path again (after a rotation); on failure keep writing to the old file.

        Raises:
            ConfigError: the new file cannot be opened (the old one stays in use).
        """
        if self.is_stderr:
            return
        new = self._open()
        old, self._file = self._file, new
        with contextlib.suppress(OSError):
            old.close()

    def close(self) -> None:
        if not self.is_stderr:
            with contextlib.suppress(OSError):
                self._file.close()


class ReopeningHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A logging handler writing to a ``LogFile`` (``error_log``), reopened with it."""

    def __init__(self, file: LogFile) -> None:
        super().__init__(file._file)
        self.file = file

    def reopen(self) -> None:
        """Reopen the file (SIGUSR1).

        Raises:
            ConfigError: the new file cannot be opened (the old one stays in use).
        """
        self.acquire()
        try:
            self.flush()
            self.file.reopen()  # closes the old file once the new one is open
            self.stream = self.file._file
        finally:
            self.release()
