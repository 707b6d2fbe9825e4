"""The transition table and its one writer, in-process on a real SQLite file: every allowed move,
a refused move from each state, the compare-and-set, and the decisions offered per state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from afterparty.backends import open_database
from afterparty.backends.url import parse_url
from afterparty.errors import StateChanged
from afterparty.lease import TaskLease
from afterparty.lock import EnvironmentLock
from afterparty.recorder import Recorder
from afterparty.records import Fence
from afterparty.states import (
    DECISIONS,
    TRANSITIONS,
    Action,
    Actor,
    Guard,
    MoveRefused,
    State,
    allows,
    next_state,
    offered,
)

VERSION = "20260101000001"


class Records:
    """One environment's records with both fences held: the environment lock and a lease."""

    def __init__(self, path: Path) -> None:
        self.database = open_database(parse_url(f"sqlite:///{path}"), 5.0)
        self.recorder = Recorder(self.database, "unit_")
        self.lock = EnvironmentLock(self.database.lock("unit_"), self.recorder)
        self.lease = TaskLease(self.database, self.recorder, VERSION)
        assert self.lock.try_take("unit test") and self.lease.try_take()

    def fence(self, guard: Guard) -> Fence:
        return self.lock.fence if guard is Guard.LOCK else self.lease.fence

    def put(self, state: State) -> None:
        """A record in ``state`` (none for pending), as a test's starting point."""
        self.database.execute("DELETE FROM unit_tasks")
        if state is not State.PENDING:
            self.database.execute(
                "INSERT INTO unit_tasks (version, name, state, attempts) VALUES (%s, 'task', %s, 1)",
                (VERSION, state.value))
        self.database.commit()

    def state(self) -> State:
        rows = self.database.query("SELECT state FROM unit_tasks WHERE version = %s", (VERSION,))
        self.database.rollback()
        return State(rows[0][0]) if rows else State.PENDING

    def move(self, before: State, after: State, guard: Guard, by: Actor) -> None:
        fence = self.fence(guard)
        with self.recorder.writing(fence):
            self.recorder.move(VERSION, before, after, fence, by, name="task")

    def close(self) -> None:
        self.lease.release()
        self.lock.release()
        self.database.close()
        self.lock.database_lock.close()
        self.lease.database_lock.close()


@pytest.fixture
def records(tmp_path: Path) -> Iterator[Records]:
    held = Records(tmp_path / "records.sqlite3")
    try:
        yield held
    finally:
        held.close()


# Every move the one writer makes (a person's pause or cancel of a running task is a request,
# which the runner then makes: see test_a_running_task_is_only_asked_to_pause_or_cancel).
ALLOWED = sorted({(source, t.to, guard, by) for t in TRANSITIONS if not t.asked
                  for source in t.sources for guard in t.guards for by in t.by})


@pytest.mark.parametrize(("before", "after", "guard", "by"), ALLOWED,
                         ids=[f"{b}-{a}-{by}-{g.name}" for b, a, g, by in ALLOWED])
def test_every_allowed_move_is_made(records: Records, before: State, after: State, guard: Guard,
                                    by: Actor) -> None:
    records.put(before)
    records.move(before, after, guard, by)
    assert records.state() is after


@pytest.mark.parametrize("before", list(State))
def test_a_move_the_table_does_not_hold_changes_nothing(records: Records, before: State) -> None:
    """From each state, a move nobody may make: a worker starting a task that is not queued or
    interrupted, or (from those) a worker ending a task that is not running."""
    after = State.SUCCEEDED if before in (State.QUEUED, State.INTERRUPTED) else State.RUNNING
    assert not allows(Actor.WORKER, before, after, Guard.LEASE)
    records.put(before)
    with pytest.raises(MoveRefused):
        records.move(before, after, Guard.LEASE, Actor.WORKER)
    assert records.state() is before


def test_a_runner_s_move_is_not_a_worker_s_and_not_under_the_other_fence() -> None:
    assert allows(Actor.RUNNER, State.PENDING, State.RUNNING, Guard.LOCK)
    assert not allows(Actor.RUNNER, State.PENDING, State.RUNNING, Guard.LEASE)
    assert not allows(Actor.WORKER, State.PENDING, State.RUNNING, Guard.LEASE)
    assert not allows(Actor.PERSON, State.RUNNING, State.SKIPPED, Guard.LOCK)


@pytest.mark.parametrize("seen", [State.QUEUED, State.PENDING, State.FAILED])
def test_a_move_from_a_state_the_record_left_changes_nothing(records: Records, seen: State) -> None:
    """The compare-and-set: a worker read `queued`, a person skipped the task meanwhile; the
    worker's start finds `skipped` and changes nothing."""
    records.put(State.SKIPPED)
    with pytest.raises(StateChanged, match="is skipped now, not"):
        records.move(seen, State.RUNNING, Guard.LEASE if seen is State.QUEUED else Guard.LOCK,
                     Actor.WORKER if seen is State.QUEUED else Actor.RUNNER)
    assert records.state() is State.SKIPPED


def test_a_record_made_meanwhile_is_not_overwritten(records: Records) -> None:
    """`pending` with no record: a record that appeared since is another writer's."""
    records.put(State.SUCCEEDED)
    with pytest.raises(StateChanged):
        records.move(State.PENDING, State.RUNNING, Guard.LOCK, Actor.RUNNER)
    assert records.state() is State.SUCCEEDED


OFFERED = {
    State.PENDING: [Action.MARK_DONE, Action.SKIP],
    State.PAUSED: [Action.RESUME, Action.CANCEL, Action.FORGET, Action.ROLLBACK_RECORD_ONLY],
    State.CANCELLED: [Action.MARK_DONE, Action.SKIP, Action.FORGET, Action.RESOLVE_RETRY,
                      Action.RESOLVE_DONE, Action.RESOLVE_SKIP, Action.ROLLBACK_RECORD_ONLY],
    State.REVERTED: [Action.MARK_DONE, Action.SKIP, Action.FORGET],
    State.QUEUED: [Action.MARK_DONE, Action.SKIP, Action.CANCEL, Action.FORGET],
    State.FAILED: [Action.MARK_DONE, Action.SKIP, Action.FORGET, Action.RESOLVE_RETRY,
                   Action.RESOLVE_DONE, Action.RESOLVE_SKIP, Action.ROLLBACK_RECORD_ONLY],
    State.INTERRUPTED: [Action.MARK_DONE, Action.SKIP, Action.FORGET, Action.RESOLVE_RETRY,
                        Action.RESOLVE_DONE, Action.RESOLVE_SKIP, Action.ROLLBACK_RECORD_ONLY],
    State.AWAITING: [Action.SKIP, Action.FORGET, Action.CONFIRM, Action.ROLLBACK_RECORD_ONLY],
    State.SUCCEEDED: [Action.FORGET, Action.ROLLBACK_RECORD_ONLY],
    State.SKIPPED: [Action.FORGET],
    State.RUNNING: [Action.PAUSE, Action.CANCEL],
}


@pytest.mark.parametrize("state", list(State))
def test_the_decisions_offered_in_each_state(state: State) -> None:
    assert offered(state) == OFFERED[state]
    for action, moves in DECISIONS.items():
        if action in OFFERED[state]:
            assert next_state(action, state) in {move.to for move in moves}
        elif not any(state in move.keep for move in moves):
            with pytest.raises(MoveRefused):
                next_state(action, state)


def test_a_running_task_is_only_asked_to_pause_or_cancel() -> None:
    """A person's pause or cancel of a running task is a request: the runner makes the move."""
    assert next_state(Action.PAUSE, State.RUNNING) is State.PAUSED
    assert not allows(Actor.PERSON, State.RUNNING, State.PAUSED, Guard.LOCK)
    assert allows(Actor.RUNNER, State.RUNNING, State.PAUSED, Guard.LOCK)
    assert allows(Actor.WORKER, State.RUNNING, State.CANCELLED, Guard.LEASE)
    assert allows(Actor.PERSON, State.PAUSED, State.CANCELLED, Guard.LOCK)


def test_a_refusal_names_the_states_the_decision_applies_to() -> None:
    with pytest.raises(MoveRefused, match="is succeeded, not awaiting: there is nothing to confirm"):
        next_state(Action.CONFIRM, State.SUCCEEDED)


def test_a_decision_that_changes_nothing_is_not_refused() -> None:
    assert next_state(Action.MARK_DONE, State.SUCCEEDED) is None
    assert next_state(Action.FORGET, State.PENDING) is None


@pytest.mark.parametrize("before", [State.PAUSED, State.CANCELLED])
def test_a_long_task_paused_or_cancelled_half_way_can_be_rolled_back(records: Records,
                                                                    before: State) -> None:
    """Its batches so far are committed: ``rollback --release`` of its release runs its undo
    step (a failed undo leaves it as it was), or ``--record-only`` marks it reverted."""
    records.put(before)
    records.move(before, State.RUNNING, Guard.LOCK, Actor.RUNNER)
    records.move(State.RUNNING, before, Guard.LOCK, Actor.RUNNER)
    assert records.state() is before
    records.move(before, State.RUNNING, Guard.LOCK, Actor.RUNNER)
    records.move(State.RUNNING, State.REVERTED, Guard.LOCK, Actor.RUNNER)
    assert records.state() is State.REVERTED
    assert next_state(Action.ROLLBACK_RECORD_ONLY, before) is State.REVERTED
    assert not allows(Actor.WORKER, before, State.RUNNING, Guard.LEASE)
