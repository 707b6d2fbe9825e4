"""The states of a task's record, the actions that move it, and which moves are allowed."""

from __future__ import annotations

from enum import Enum


class State(str, Enum):
    """A record's state, stored as its value. A task with no record is ``PENDING``."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"
    AWAITING = "awaiting"
    REVERTED = "reverted"
    QUEUED = "queued"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def is_done(self) -> bool:
        """Nothing left for ``run``: it succeeded or a person said to skip it."""
        return self in DONE

    @property
    def needs_a_person(self) -> bool:
        """``run`` leaves it alone until someone decides (confirm, resolve)."""
        return self is State.AWAITING


DONE = frozenset({State.SUCCEEDED, State.SKIPPED})
# What a person may still want to look at after a run: the deploy gate lists these.
NEEDS_ATTENTION = frozenset({State.FAILED, State.INTERRUPTED, State.AWAITING})


# Stored value -> State, for reading ten thousand records without calling the Enum each time.
_BY_VALUE = {state.value: state for state in State}


def state_of(stored: str | None) -> State:
    """The State of a stored value; no record is ``PENDING``."""
    return State.PENDING if stored is None else _BY_VALUE.get(stored) or State(stored)


def run_state(stored: str | None, recurring: bool | int = False) -> State:
    """The state as ``run`` sees it: a recurring task always has work, so it reads pending."""
    return State.PENDING if recurring else state_of(stored)


# The states ``run`` has work for: neither done nor waiting for a person.
RUN_HAS_WORK = frozenset(state for state in State if not (state in DONE or state is State.AWAITING))



class Action(str, Enum):
    """What was done to a task, as kept in its history (the ``action`` of an attempt)."""

    RUN = "run"
    ROLLBACK = "rollback"
    ROLLBACK_RECORD_ONLY = "rollback --record-only"
    MARK_DONE = "mark-done"
    SKIP = "skip"
    FORGET = "forget"
    RESOLVE_RETRY = "resolve --retry"
    RESOLVE_DONE = "resolve --done"
    RESOLVE_SKIP = "resolve --skip"
    CONFIRM = "confirm"
    #: Sent to a worker (``@task(background=True)``); the record is ``queued``.
    ENQUEUE = "enqueue"

    def __str__(self) -> str:
        return self.value

    @property
    def verb(self) -> str:
        """The command's word, for messages: ``resolve --retry`` -> ``resolve``."""
        return self.value.split()[0]


class Move:
    """One decision's rule: the state it leaves a task in, and the states it may start from
    (``None``: any); from a state in ``keep`` it changes nothing."""

    __slots__ = ("keep", "only_from", "to")

    def __init__(self, to: State, only_from: frozenset[State] | None = None,
                 keep: frozenset[State] = frozenset()) -> None:
        self.to = to
        self.only_from = only_from
        self.keep = keep


_SETTLEABLE = frozenset({State.INTERRUPTED, State.FAILED})
MOVES: dict[Action, Move] = {
    Action.MARK_DONE: Move(State.SUCCEEDED, keep=DONE),
    Action.SKIP: Move(State.SKIPPED, keep=DONE),
    Action.FORGET: Move(State.PENDING, keep=frozenset({State.PENDING})),
    Action.RESOLVE_RETRY: Move(State.PENDING, only_from=_SETTLEABLE),
    Action.RESOLVE_DONE: Move(State.SUCCEEDED, only_from=_SETTLEABLE),
    Action.RESOLVE_SKIP: Move(State.SKIPPED, only_from=_SETTLEABLE),
    Action.CONFIRM: Move(State.SUCCEEDED, only_from=frozenset({State.AWAITING})),
    Action.ROLLBACK_RECORD_ONLY: Move(
        State.REVERTED,
        only_from=frozenset({State.SUCCEEDED, State.FAILED, State.INTERRUPTED, State.AWAITING})),
}
# A task that ran can be rolled back from these states (its undo step runs).
ROLLBACK_FROM = frozenset({State.SUCCEEDED, State.FAILED, State.INTERRUPTED, State.AWAITING})
RESOLVE_ACTIONS = {"retry": Action.RESOLVE_RETRY, "done": Action.RESOLVE_DONE,
                   "skip": Action.RESOLVE_SKIP}


class MoveRefused(Exception):
    """A decision does not apply to a task in its current state."""


def next_state(action: Action, before: State) -> State | None:
    """The state ``action`` moves a task in state ``before`` to; None when it changes nothing;
    MoveRefused when the action does not apply to that state."""
    move = MOVES[action]
    if move.only_from is not None and before not in move.only_from:
        allowed = " or ".join(sorted(state.value for state in move.only_from))
        raise MoveRefused(f"is {before}, not {allowed}: there is nothing to {action.verb}")
    if before in move.keep or before is move.to:
        return None
    return move.to
