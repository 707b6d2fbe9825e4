"""While a task runs: how long it has been running (and how far it got, when it says), at a
terminal and in a log."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from afterparty.records import Progress


class TickerOutput(Protocol):
    """Where a ticker says what it says (the run's printer)."""

    out: IO[str]
    err: IO[str]

    def show_indicator(self, text: str) -> None: ...

    def heartbeat(self, text: str) -> None: ...

# A task running longer than this gets the elapsed-time indicator at a terminal.
INDICATOR_AFTER = 2.0
# How often a task still running says so in a log (not a terminal); tests shorten it.
HEARTBEAT_VAR = "AFTERPARTY_HEARTBEAT_SECONDS"
HEARTBEAT_SECONDS = 30.0


def _heartbeat_seconds() -> float:
    try:
        return max(0.1, float(os.environ.get(HEARTBEAT_VAR, HEARTBEAT_SECONDS)))
    except ValueError:
        return HEARTBEAT_SECONDS


class Ticker:
    """While a task runs: the elapsed time at a terminal (a line redrawn on stderr about once a
    second after the first two), and in a log a heartbeat line every 30 s."""

    def __init__(self, printer: TickerOutput, label: str,
                 describe: Callable[[dict[str, Any]], str]) -> None:
        self.printer = printer
        self.label = label
        #: Puts a progress report (``Progress.shown()``) into words.
        self.describe = describe
        #: The task's last progress report (``ctx.progress``).
        self.progress: Progress | None = None
        self.stopped = threading.Event()
        self.live = _isatty(printer.err)
        self.beat = None if _isatty(printer.out) else _heartbeat_seconds()
        self.thread = threading.Thread(target=self._run, name="afterparty-progress", daemon=True)

    def start(self) -> None:
        if self.live or self.beat:
            self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join(timeout=2)

    def _run(self) -> None:
        started = time.monotonic()
        next_beat = started + self.beat if self.beat else None
        while True:
            now = time.monotonic()
            waits = [1.0] if self.live else []
            if next_beat is not None:
                waits.append(max(0.0, next_beat - now))
            if self.stopped.wait(min(waits)):
                return
            elapsed = time.monotonic() - started
            detail = f": {self._progress_text()}" if self.progress is not None else ""
            if self.live and elapsed >= INDICATOR_AFTER:
                self.printer.show_indicator(f"{self.label} running for {elapsed:.0f}s{detail}")
            if next_beat is not None and time.monotonic() >= next_beat:
                self.printer.heartbeat(f"{self.label} still running after {elapsed:.0f}s{detail}")
                assert self.beat is not None
                next_beat += self.beat


    def _progress_text(self) -> str:
        progress = self.progress
        assert progress is not None
        return self.describe(progress.shown())


def _isatty(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
