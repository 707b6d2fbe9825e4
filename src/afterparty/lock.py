"""Waits for the environment lock with backoff, as --wait and --if-busy ask."""

from __future__ import annotations

import time
from collections.abc import Callable

from afterparty.backends.base import Backend
from afterparty.errors import ConfigError, LockBusyError

IF_BUSY_CHOICES = ("wait", "skip", "fail")
HOLDER_REPEAT_SECONDS = 15.0
# What acquire_lock came to: the lock is ours; busy and told to skip; or, while waiting, the
# work turned out to be done by the holder (a lock-free "nothing to do", as guarantee 2 allows).
ACQUIRED, BUSY, FINISHED_ELSEWHERE = "acquired", "busy", "finished elsewhere"


def acquire_lock(backend: Backend, prefix: str, wait: float, if_busy: str,
                 holder: Callable[[], str | None], on_wait: Callable[[str | None], None],
                 finished: Callable[[], bool] | None = None) -> str:
    """Take the lock (ACQUIRED); BUSY when busy and ``if_busy`` is ``skip``; FINISHED_ELSEWHERE
    when ``finished`` says, while waiting, that nothing is left to do; LockBusyError on failure."""
    if if_busy not in IF_BUSY_CHOICES:
        raise ConfigError(f"--if-busy must be one of {', '.join(IF_BUSY_CHOICES)}")
    if backend.try_lock(prefix):
        return ACQUIRED
    if if_busy == "skip":
        on_wait(holder())
        return BUSY
    if if_busy == "fail" or wait <= 0:
        raise LockBusyError(_busy_message(holder(), waited=None if if_busy == "fail" else wait))
    on_wait(holder())
    deadline = time.monotonic() + wait
    next_report = time.monotonic() + HOLDER_REPEAT_SECONDS
    delay = 0.05
    while time.monotonic() < deadline:
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        # Look first: a holder commits its work before it lets go, so a free lock with nothing
        # left means we can leave without taking it.
        if finished is not None and finished():
            return FINISHED_ELSEWHERE
        if backend.try_lock(prefix):
            return ACQUIRED
        delay = min(delay * 1.5, 0.25)
        if time.monotonic() >= next_report:
            on_wait(holder())
            next_report = time.monotonic() + HOLDER_REPEAT_SECONDS
    raise LockBusyError(_busy_message(holder(), waited=wait))


def _busy_message(holder: str | None, waited: float | None) -> str:
    who = f" ({holder})" if holder else ""
    after = f" after waiting {waited:g} s" if waited is not None else ""
    return (
        f"another afterparty runner holds the lock{who}{after}: let it finish, "
        "or run again with a longer --wait"
    )
