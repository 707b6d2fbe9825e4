"""Spans of time as tasks and notices give them (``"30m"``, ``"4h"``, ``"1d"``) and as people
read them (``12 min of 30``)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(min|d|h|m|s)", re.IGNORECASE)
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "min": 60, "s": 1}
# The unit a span is told in, by the span it is compared with: seconds below 2 min, minutes
# below 3 h, hours below 3 days, then days.
_UNITS = (("s", 1, 120), ("min", 60, 10800), ("h", 3600, 259200))


class DurationError(ValueError):
    """Not a span of time afterparty can read."""


def seconds_of(span: object, option: str) -> float:
    """Seconds in ``span``: a number of seconds, a ``timedelta``, or text such as ``"30m"``,
    ``"1h30m"``, ``"4h"``, ``"1d"``, ``"3s"``. DurationError, naming ``option``, otherwise."""
    if isinstance(span, timedelta):
        seconds = span.total_seconds()
    elif isinstance(span, (int, float)) and not isinstance(span, bool):
        seconds = float(span)
    elif isinstance(span, str) and span.strip() and _PART.sub("", span).strip() == "":
        seconds = sum(float(amount) * _SECONDS[unit.lower()]
                      for amount, unit in _PART.findall(span))
    else:
        raise DurationError(f"{option} takes a span of time such as '30m', '4h', '1d' or a "
                            f"number of seconds, not {span!r}")
    if seconds <= 0:
        raise DurationError(f"{option} takes a span of time greater than 0, not {span!r}")
    return seconds


def elapsed_text(elapsed: float, total: float) -> str:
    """How much of ``total`` has passed, in the unit that suits ``total``: ``12 min of 30``,
    ``2 s of 3``, ``5 h of 24``; the part that passed is counted down to a whole unit."""
    unit, size = next(((unit, size) for unit, size, up_to in _UNITS if total < up_to), ("d", 86400))
    whole = max(0, int(elapsed // size))
    of = total / size
    return f"{whole} {unit} of {of:g}" if of.is_integer() else f"{whole} {unit} of {of:.1f}"


def span_text(seconds: float) -> str:
    """A span as a person says it: ``45 s``, ``12 min``, ``4 h``, ``1 d 2 h``."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        hours = seconds / 3600
        return f"{hours:.0f} h" if hours >= 10 or hours.is_integer() else f"{hours:.1f} h"
    days, rest = divmod(seconds, 86400)
    return f"{days:.0f} d" + (f" {rest / 3600:.0f} h" if rest >= 3600 else "")


class ReleaseClock(NamedTuple):
    """How long the release deployed now has been live in this environment: ``live_since`` is
    its first deployment here (since its last rollback), in the records' format."""

    release: str | None
    live_since: str | None

    def waiting(self, seconds: float, now: datetime | None = None) -> str | None:
        """Why something that needs the release live ``seconds`` must still wait; None once it
        has been. Kept as a task's waiting reason: ``reason_now`` tells it again later."""
        if self.release is None:
            return ("no release id to tell how long the release has been live: set "
                    "AFTERPARTY_RELEASE (or deploy from a git checkout)")
        if self.live_since is None:
            return f"release {self.release} is not recorded as deployed here yet (`afterparty run`)"
        since = datetime.fromisoformat(self.live_since)
        elapsed = ((now or datetime.now(timezone.utc)) - since).total_seconds()
        if elapsed >= seconds:
            return None
        return (f"release {self.release} live for {elapsed_text(elapsed, seconds)} "
                f"(deployed here {since:%Y-%m-%d %H:%M:%S} UTC)")


_LIVE_REASON = re.compile(r"^release (?P<release>.+) live for \d+ (?P<unit>s|min|h|d) of "
                          r"(?P<total>[\d.]+) \(deployed here (?P<since>[\d-]+ [\d:]+) UTC\)$")


def live_reason_now(stored: str, now: datetime | None = None) -> str | None:
    """A kept ``ReleaseClock.waiting`` reason as it reads now (``release 4f2c9e1 live for 12
    min of 30``); None once the release has been live long enough; the reason as it is when it
    is no such reason."""
    found = _LIVE_REASON.match(stored)
    if found is None:
        return stored
    size = {unit: size for unit, size, _ in _UNITS}.get(found["unit"], 86400)
    total = float(found["total"]) * size
    since = datetime.strptime(found["since"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    elapsed = ((now or datetime.now(timezone.utc)) - since).total_seconds()
    if elapsed >= total:
        return None
    return f"release {found['release']} live for {elapsed_text(elapsed, total)}"


def live_reason_release(stored: str) -> str | None:
    """The release a kept ``ReleaseClock.waiting`` reason waits for; None for other reasons."""
    found = _LIVE_REASON.match(stored)
    return found["release"] if found else None
