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
# How often the tickers' thread wakes while no task runs.
IDLE_WAKE = 1.0
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
    second after the first two), and in a log a heartbeat line every 30 s. Every ticker of the
    process is served by one thread (``_WATCHER``): a run of a thousand short tasks starts and
    joins no thread per task."""

    def __init__(self, printer: TickerOutput, label: str,
                 describe: Callable[[dict[str, Any]], str]) -> None:
        self.printer = printer
        self.label = label
        #: Puts a progress report (``Progress.shown()``) into words.
        self.describe = describe
        #: The task's last progress report (``ctx.progress``).
        self.progress: Progress | None = None
        self.live = _isatty(printer.err)
        self.beat = None if _isatty(printer.out) else _heartbeat_seconds()
        self._started = 0.0
        self._next_draw: float | None = None
        self._next_beat: float | None = None

    def start(self) -> None:
        if self.live or self.beat:
            self._started = now = time.monotonic()
            self._next_draw = now + INDICATOR_AFTER if self.live else None
            self._next_beat = now + self.beat if self.beat else None
            _WATCHER.follow(self)

    def stop(self) -> None:
        """Once it returns, this ticker says nothing more."""
        _WATCHER.unfollow(self)

    def due(self) -> float:
        """When this ticker next has something to say (monotonic seconds)."""
        return min(t for t in (self._next_draw, self._next_beat) if t is not None)

    def tick(self, now: float) -> None:
        """Say what is due at ``now``."""
        elapsed = now - self._started
        detail = f": {self._progress_text()}" if self.progress is not None else ""
        if self._next_draw is not None and now >= self._next_draw:
            self.printer.show_indicator(f"{self.label} running for {elapsed:.0f}s{detail}")
            self._next_draw = now + 1.0
        if self._next_beat is not None and now >= self._next_beat:
            self.printer.heartbeat(f"{self.label} still running after {elapsed:.0f}s{detail}")
            assert self.beat is not None
            self._next_beat += self.beat

    def _progress_text(self) -> str:
        progress = self.progress
        assert progress is not None
        return self.describe(progress.shown())


class _Watcher:
    """The one thread that makes the tickers of this process speak when they are due; started
    with the first ticker, and again in a forked child that needs one."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._tickers: list[Ticker] = []
        self._thread: threading.Thread | None = None
        #: When the thread wakes next by itself: a ticker due later needs no wake-up call.
        self._wakes_at = 0.0

    def follow(self, ticker: Ticker) -> None:
        with self._changed:
            self._tickers.append(ticker)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="afterparty-progress",
                                                daemon=True)
                self._thread.start()
            elif ticker.due() < self._wakes_at:
                self._changed.notify()

    def unfollow(self, ticker: Ticker) -> None:
        # Under the condition's lock: a tick of this ticker is never under way after this.
        with self._changed:
            if ticker in self._tickers:
                self._tickers.remove(ticker)

    def _run(self) -> None:
        with self._changed:
            while True:
                now = time.monotonic()
                # Idle, it looks again within a second: sooner than any new ticker is due.
                due = min((t.due() for t in self._tickers), default=now + IDLE_WAKE)
                if due > now:
                    self._wakes_at = due
                    self._changed.wait(due - now)
                    continue
                for ticker in list(self._tickers):
                    if ticker.due() <= now:
                        ticker.tick(now)


_WATCHER = _Watcher()


def _isatty(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
