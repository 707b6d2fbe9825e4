"""The command line's own log records (the runner's, not a task's): on stderr, as text with a
time or as one JSON object per line (``--log-format json``, ``AFTERPARTY_LOG_FORMAT``)."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from afterparty.config import Settings

RUNNER_LOGGER = "afterparty"


class CommandLineLogHandler(logging.Handler):
    """On the ``afterparty`` logger, never the root: the application's loggers and handlers
    stay the application's. A record that a running task's capture shows (the task's own, or
    any while its body runs) is not shown again here."""

    def __init__(self, log_format: str, fields: dict[str, object]) -> None:
        super().__init__(logging.INFO)
        self.log_format = log_format
        self.fields = fields
        self.previous_level = logging.NOTSET

    @classmethod
    def install(cls, log_format: str, settings: Settings) -> CommandLineLogHandler:
        fields: dict[str, object] = {"environment": settings.environment}
        if log_format == "json":
            from afterparty.config import detect_release

            fields["release"] = detect_release(settings)
        handler = cls(log_format, fields)
        logger = logging.getLogger(RUNNER_LOGGER)
        handler.previous_level = logger.level
        if logger.level == logging.NOTSET and logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        return handler

    @staticmethod
    def uninstall(handler: CommandLineLogHandler) -> None:
        logger = logging.getLogger(RUNNER_LOGGER)
        logger.removeHandler(handler)
        logger.setLevel(handler.previous_level)

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "afterparty_captured", False) or _capturing():
            return
        from afterparty.capture import json_log_line, text_log_line

        try:
            line = json_log_line(record, self.fields) if self.log_format == "json" \
                else text_log_line(record)
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except Exception:  # logging must never stop a run
            self.handleError(record)


def _capturing() -> bool:
    capture = sys.modules.get("afterparty.capture")
    return bool(capture and capture.capturing())
