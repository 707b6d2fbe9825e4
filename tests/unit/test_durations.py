"""Spans of time as tasks give them and people read them, and the release clock of live_for:
in-process, without a database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from afterparty.definition import TaskOptionError, task
from afterparty.durations import (
    DurationError,
    ReleaseClock,
    elapsed_text,
    live_reason_now,
    seconds_of,
)

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(("span", "seconds"), [
    ("30m", 1800), ("4h", 14400), ("1d", 86400), ("3s", 3), ("1h30m", 5400), ("90 min", 5400),
    (45, 45), (2.5, 2.5), (timedelta(minutes=2), 120)])
def test_spans_of_time(span: object, seconds: float) -> None:
    assert seconds_of(span, "live_for") == seconds


@pytest.mark.parametrize("span", ["", "soon", "3x", "m30", 0, -5, True, None, "0s"])
def test_what_is_no_span_of_time_is_refused_by_name(span: object) -> None:
    with pytest.raises(DurationError, match="live_for takes a span of time"):
        seconds_of(span, "live_for")


def test_task_options_refuse_a_wrong_span_where_the_file_is_imported() -> None:
    with pytest.raises(TaskOptionError, match=r"@task\(live_for=...\) takes a span of time"):
        task(live_for="half an hour")
    assert task(live_for="30m")(lambda ctx: None).live_for == 1800


@pytest.mark.parametrize(("elapsed", "total", "text"), [
    (12 * 60 + 59, 1800, "12 min of 30"), (1.9, 3, "1 s of 3"), (5 * 3600, 86400, "5 h of 24"),
    (86400, 4 * 86400, "1 d of 4"), (0, 90 * 60, "0 min of 90")])
def test_how_much_of_a_span_has_passed(elapsed: float, total: float, text: str) -> None:
    assert elapsed_text(elapsed, total) == text


def test_the_release_clock_says_how_long_it_still_waits_and_says_it_again_later() -> None:
    clock = ReleaseClock("4f2c9e1", (NOW - timedelta(minutes=12)).isoformat())
    kept = clock.waiting(1800, NOW)
    assert kept == "release 4f2c9e1 live for 12 min of 30 (deployed here 2026-11-26 09:48:00 UTC)"
    assert live_reason_now(kept, NOW + timedelta(minutes=5)) == "release 4f2c9e1 live for 17 min of 30"
    assert live_reason_now(kept, NOW + timedelta(minutes=18)) is None
    assert clock.waiting(600, NOW) is None
    assert live_reason_now("condition ready is not met yet") == "condition ready is not met yet"


def test_without_a_release_id_a_live_for_task_says_what_is_missing() -> None:
    assert "set AFTERPARTY_RELEASE" in str(ReleaseClock(None, None).waiting(60, NOW))
    assert "not recorded as deployed" in str(ReleaseClock("r1", None).waiting(60, NOW))


def test_reminders_are_for_human_steps_and_an_escalation_names_whom() -> None:
    with pytest.raises(TaskOptionError, match="need manual=True"):
        task(remind_every="4h")
    with pytest.raises(TaskOptionError, match="go together"):
        task(manual=True, escalate_after="1d")
    with pytest.raises(TaskOptionError, match=r"@task\(remind_every=...\) takes a span of time"):
        task(manual=True, remind_every="often")
    step = task(manual=True, owner="ops", remind_every="4h", escalate_after="1d",
                escalate_to="oncall")(lambda ctx: "Rotate the key")
    assert (step.remind_every, step.escalate_after, step.escalate_to) == (14400, 86400, "oncall")
