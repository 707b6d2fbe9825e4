"""What stops a task's body: SIGTERM and SIGINT (``Interruptions``) and its ``timeout``
(``Deadline``), each raised where the body is, and remembered even if the body swallows it."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from afterparty.errors import StoppedBySignal


class TaskTimeout(BaseException):
    """Raised inside a task body when its ``timeout`` runs out (not catchable as Exception)."""


class Interruptions:
    """SIGTERM and SIGINT during a run. Inside a task body, a retry wait or a question to a
    person they stop at once (StoppedBySignal); anywhere else the run stops before the next
    task. ``signal`` remembers the first one, whatever the task did with the exception."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._at_once = False

    @contextmanager
    def installed(self) -> Iterator[Interruptions]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # only the main thread may handle signals: the caller's own stay
            return
        previous = {signum: signal.signal(signum, self._on_signal)
                    for signum in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    @contextmanager
    def at_once(self) -> Iterator[None]:
        """A stretch that a signal ends at once."""
        if self.signal is not None:
            raise StoppedBySignal(self.signal)
        outer, self._at_once = self._at_once, True
        try:
            yield
        finally:
            self._at_once = outer

    def sleep(self, seconds: float) -> None:
        """Wait, unless a signal comes first."""
        with self.at_once():
            time.sleep(seconds)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is None:
            self.signal = signum
        if self._at_once:
            raise StoppedBySignal(signum)


class Deadline:
    """A task's ``timeout``: SIGALRM raises TaskTimeout in its body, and ``expired`` stays
    true even if the body swallowed it."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.expired = False

    def __enter__(self) -> Deadline:
        if self.seconds and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGALRM, self._on_alarm)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        else:
            self.seconds = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.seconds:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        self.expired = True
        raise TaskTimeout()
