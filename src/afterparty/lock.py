"""The environment lock, whole: waiting with backoff, the epoch that fences older holders,
the check before each task, release, and who holds it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from enum import Enum

from afterparty.backends.base import DatabaseLock
from afterparty.errors import ConfigError, LockBusyError
from afterparty.fencing import LOCK_KEY, FencedLock
from afterparty.recorder import Recorder
from afterparty.states import Guard

IF_BUSY_CHOICES = ("wait", "skip", "fail")
HOLDER_REPEAT_SECONDS = 15.0
# The longest pause between two tries of a waiting runner: once the holder lets go, the runners
# that waited leave (or one takes over) within this.
MAX_POLL_SECONDS = 0.1


class LockOutcome(Enum):
    """What trying to take the lock came to."""

    ACQUIRED = "acquired"
    #: Busy, and told to skip (--if-busy skip).
    BUSY = "busy"
    #: While waiting, a lock-free look found nothing left to do (guarantee 2 allows that).
    FINISHED_ELSEWHERE = "finished elsewhere"


class EnvironmentLock(FencedLock):
    """One environment's lock, as a runner takes it (waiting as told), checks it before each
    task and gives it back; its fence guards every write of the runner and of decisions."""

    def __init__(self, database_lock: DatabaseLock, recorder: Recorder) -> None:
        super().__init__(database_lock, recorder, LOCK_KEY, Guard.LOCK)

    def acquire(self, wait: float, if_busy: str, on_wait: Callable[[str | None], None],
                finished: Callable[[], bool] | None = None) -> LockOutcome:
        """Take the lock, waiting up to ``wait`` seconds as ``if_busy`` says; LockBusyError when
        the wait runs out or ``if_busy`` is ``fail``. Once taken, the records' schema exists and
        a new epoch has begun."""
        if if_busy not in IF_BUSY_CHOICES:
            raise ConfigError(f"--if-busy must be one of {', '.join(IF_BUSY_CHOICES)}")
        outcome = self._wait_for_it(wait, if_busy, on_wait, finished)
        if outcome is LockOutcome.ACQUIRED:
            self._begin_epoch(holder_identity())
        return outcome

    def _wait_for_it(self, wait: float, if_busy: str, on_wait: Callable[[str | None], None],
                     finished: Callable[[], bool] | None) -> LockOutcome:
        if self.database_lock.try_acquire():
            return LockOutcome.ACQUIRED
        if if_busy == "skip":
            on_wait(self.describe_holder())
            return LockOutcome.BUSY
        if if_busy == "fail" or wait <= 0:
            raise LockBusyError(_busy_message(self.describe_holder(),
                                              waited=None if if_busy == "fail" else wait))
        on_wait(self.describe_holder())
        deadline = time.monotonic() + wait
        next_report = time.monotonic() + HOLDER_REPEAT_SECONDS
        delay = 0.02
        while time.monotonic() < deadline:
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            # Only taking it is asked often (one cheap statement): the look at what is left
            # is made once it is free. The holder commits its work before it lets go, so with
            # nothing left we leave at once, giving it back untouched (no new epoch).
            if self.database_lock.try_acquire():
                if finished is not None and finished():
                    self.database_lock.release()
                    return LockOutcome.FINISHED_ELSEWHERE
                return LockOutcome.ACQUIRED
            delay = min(delay * 1.5, MAX_POLL_SECONDS)
            if time.monotonic() >= next_report:
                on_wait(self.describe_holder())
                next_report = time.monotonic() + HOLDER_REPEAT_SECONDS
        raise LockBusyError(_busy_message(self.describe_holder(), waited=wait))

    def lost_message(self) -> str:
        return ("this runner lost the environment lock (its database session ended: killed, an "
                "idle timeout, the network): it stopped before the next task; run "
                "`afterparty run` again")

    def describe_holder(self) -> str | None:
        """The database's view of the holder, with the identity it wrote when it took the lock."""
        live = self.database_lock.holder()
        if live and "pid" in live:
            return live
        stored = self.recorder.read_lock_holder()
        if stored and live:
            return f"{stored}; {live}"
        return stored or live


def holder_identity() -> str:
    """How this runner describes itself to others waiting for the lock."""
    import socket
    from datetime import datetime, timezone

    since = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"host {socket.gethostname()}, pid {os.getpid()}, since {since}"


def _busy_message(holder: str | None, waited: float | None) -> str:
    who = f" ({holder})" if holder else ""
    after = f" after waiting {waited:g} s" if waited is not None else ""
    return (
        f"another afterparty runner holds the lock{who}{after}: let it finish, "
        "or run again with a longer --wait"
    )
