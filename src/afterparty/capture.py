"""Captures what a task logs and prints, shows it live and keeps it (capped) for its attempt."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

OUTPUT_LIMIT = 64 * 1024
TRUNCATED = "\n[output truncated at 64 KiB]\n"


class OutputCapture:
    """Collects a task's output up to 64 KiB and passes every line on to ``show``."""

    def __init__(self, logger_name: str, show: Callable[[str], None]) -> None:
        self.show = show
        self.parts: list[str] = []
        self.size = 0
        self.truncated = False
        # The level goes once on the parent that every task's logger inherits it from:
        # setLevel on each new logger would clear the cache of every logger made so far,
        # which made applying a thousand tasks quadratic.
        family = logging.getLogger(logger_name.rpartition(".")[0] or logger_name)
        if family.level != logging.DEBUG:
            family.setLevel(logging.DEBUG)
        self.logger = logging.getLogger(logger_name)
        self.logger.propagate = False
        self._handler = _CaptureHandler(self)
        self._saved: tuple[TextIO, TextIO] | None = None

    def write(self, text: str) -> None:
        """Keep ``text`` (until the cap) and show it."""
        if not text:
            return
        self.show(text)
        if self.truncated:
            return
        room = OUTPUT_LIMIT - self.size
        if len(text) > room:
            text = text[:room]
            self.truncated = True
        self.parts.append(text)
        self.size += len(text)

    @property
    def text(self) -> str:
        return "".join(self.parts) + (TRUNCATED if self.truncated else "")

    def __enter__(self) -> OutputCapture:
        self.logger.addHandler(self._handler)
        self._saved = (sys.stdout, sys.stderr)
        sys.stdout = _Tee(self, sys.stdout)
        sys.stderr = _Tee(self, sys.stderr)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.logger.removeHandler(self._handler)
        if self._saved is not None:
            sys.stdout, sys.stderr = self._saved


class _CaptureHandler(logging.Handler):
    def __init__(self, capture: OutputCapture) -> None:
        super().__init__()
        self.capture = capture
        self.setFormatter(logging.Formatter("%(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.capture.write(self.format(record) + "\n")


class _Tee:
    """Stands in for sys.stdout/sys.stderr while a task runs."""

    def __init__(self, capture: OutputCapture, original: TextIO) -> None:
        self.capture = capture
        self.original = original

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            # As a text stream does: click probes with write(b"") and, when it passes, writes
            # bytes through a wrapper of its own, which would fail the task.
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self.capture.write(text)
        return len(text)

    def flush(self) -> None:
        self.original.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> object:
        return getattr(self.original, name)
