"""Captures what a task logs and prints, shows it live and keeps it (capped) for its attempt.

``ctx.log`` (``afterparty.task.<version>_<name>``) propagates: the application's handlers
(Django's LOGGING, Sentry, a JSON formatter) get its records too. While a body runs, a handler
on the root logger also captures what the application's own loggers emit."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

OUTPUT_LIMIT = 64 * 1024
TRUNCATED = "\n[output truncated at 64 KiB]\n"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# The captures whose body is running now (a rollback's undo step runs inside no other).
_active: list[OutputCapture] = []


def capturing() -> bool:
    """Whether a task body runs now: its capture shows every record, so others need not."""
    return bool(_active)


class OutputCapture:
    """Collects a task's output up to 64 KiB and passes every line on to ``show``."""

    def __init__(self, logger_name: str, show: Callable[[str], None],
                 show_err: Callable[[str], None] | None = None,
                 show_record: Callable[[logging.LogRecord], None] | None = None,
                 fields: dict[str, object] | None = None) -> None:
        """``show`` gets what the task prints to stdout, ``show_err`` what it prints to stderr;
        ``show_record`` (else ``show``, as text) each log record, which carries ``fields``
        (task version and name, attempt) as ``record.afterparty``."""
        self.show = show
        self.show_err = show_err or show
        self.show_record = show_record
        self.fields = fields or {}
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
        self.logger.propagate = True  # to the application's handlers, too
        self._handler = _CaptureHandler(self)
        self._root_handler = _CaptureHandler(self)
        self._saved: tuple[TextIO, TextIO] | None = None

    def write(self, text: str, show: Callable[[str], None] | None = None) -> None:
        """Keep ``text`` (until the cap) and show it (with ``show``, else on stdout's)."""
        if not text:
            return
        (show or self.show)(text)
        self.keep(text)

    def keep(self, text: str) -> None:
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
        logging.getLogger().addHandler(self._root_handler)
        _active.append(self)
        self._saved = (sys.stdout, sys.stderr)
        sys.stdout = _Tee(self, sys.stdout, self.show)
        sys.stderr = _Tee(self, sys.stderr, self.show_err)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.logger.removeHandler(self._handler)
        logging.getLogger().removeHandler(self._root_handler)
        if self in _active:
            _active.remove(self)
        if self._saved is not None:
            sys.stdout, sys.stderr = self._saved


class _CaptureHandler(logging.Handler):
    """On the task's logger, and on the root logger for what other loggers emit meanwhile; a
    record that reached both is captured once."""

    def __init__(self, capture: OutputCapture) -> None:
        super().__init__()
        self.capture = capture

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "afterparty_captured", False):
            return
        record.afterparty_captured = True
        if not hasattr(record, "afterparty"):
            record.afterparty = self.capture.fields
        try:
            text = text_log_line(record, own=record.name == self.capture.logger.name) + "\n"
            if self.capture.show_record is not None:
                self.capture.show_record(record)
                self.capture.keep(text)
            else:
                self.capture.write(text)
        except Exception:  # a message that does not format: logging's own report, not a crash
            self.handleError(record)


def text_log_line(record: logging.LogRecord, own: bool = False) -> str:
    """A log record as text: time, level, the logger unless it is the task's own, message."""
    import time

    when = time.strftime(TIME_FORMAT, time.localtime(record.created))
    message = record.getMessage()
    if record.exc_info:
        message += "\n" + logging.Formatter().formatException(record.exc_info)
    return f"{when} {record.levelname} {message}" if own else \
        f"{when} {record.levelname} {record.name}: {message}"


def json_log_line(record: logging.LogRecord, fields: dict[str, object]) -> str:
    """A log record as one JSON object on one line, for log aggregators."""
    import json
    from datetime import datetime, timezone

    data: dict[str, object] = {
        "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
        "level": record.levelname, "logger": record.name, "message": record.getMessage(),
        "environment": None, "release": None, "version": None, "name": None, "attempt": None,
    }
    data.update(fields)
    data.update(getattr(record, "afterparty", None) or {})
    if record.exc_info:
        data["exception"] = logging.Formatter().formatException(record.exc_info)
    return json.dumps(data, default=str)


class _Tee:
    """Stands in for sys.stdout/sys.stderr while a task runs."""

    def __init__(self, capture: OutputCapture, original: TextIO, show: Callable[[str], None]) -> None:
        self.capture = capture
        self.original = original
        self.show = show

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            # As a text stream does: click probes with write(b"") and, when it passes, writes
            # bytes through a wrapper of its own, which would fail the task.
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self.capture.write(text, self.show)
        return len(text)

    def flush(self) -> None:
        self.original.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> object:
        return getattr(self.original, name)
