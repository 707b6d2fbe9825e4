"""The states of a task's record, the actions that move it, and which moves are allowed."""

from __future__ import annotations

from enum import Enum

from afterparty.tuples import NamedTuple


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
    #: Stopped at a batch or progress boundary because a person asked (``pause``): its work so
    #: far is kept; ``resume`` makes it pending again, and it goes on from its checkpoint.
    PAUSED = "paused"
    #: Stopped because a person asked (``cancel``): not run again until someone decides.
    CANCELLED = "cancelled"

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
        """``run`` leaves it alone until someone decides (confirm, resume, resolve)."""
        return self in WAITS_FOR_A_PERSON


DONE = frozenset({State.SUCCEEDED, State.SKIPPED})
# ``run`` leaves these alone until a person decides.
WAITS_FOR_A_PERSON = frozenset({State.AWAITING, State.PAUSED, State.CANCELLED})
# What a person may still want to look at after a run: the deploy gate lists these.
NEEDS_ATTENTION = frozenset({State.FAILED, State.INTERRUPTED, State.AWAITING, State.PAUSED,
                             State.CANCELLED})


#: Stored value -> State, for reading ten thousand records without a call for each.
STORED = {state.value: state for state in State}


def state_of(stored: str | None) -> State:
    """The State of a stored value; no record is ``PENDING``."""
    return State.PENDING if stored is None else STORED.get(stored) or State(stored)


def run_state(stored: str | None, recurring: bool | int = False) -> State:
    """The state as ``run`` sees it: a recurring task always has work, so it reads pending."""
    return State.PENDING if recurring else state_of(stored)


# The states ``run`` has work for: neither done nor waiting for a person.
RUN_HAS_WORK = frozenset(state for state in State
                         if not (state in DONE or state in WAITS_FOR_A_PERSON))



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
    #: A person asks a running task to stop at its next batch or progress report, and later
    #: makes it pending again (``resume``), or stops it for good (``cancel``).
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    #: Sent to a worker (``@task(background=True)``); the record is ``queued``.
    ENQUEUE = "enqueue"

    def __str__(self) -> str:
        return self.value

    @property
    def verb(self) -> str:
        """The command's word, for messages: ``resolve --retry`` -> ``resolve``."""
        return self.value.split()[0]


class Actor(str, Enum):
    """Who makes a move: the runner of ``afterparty run`` (inline tasks, holding the environment
    lock), a worker (a background task, holding its lease), or a person deciding."""

    RUNNER = "runner"
    WORKER = "worker"
    PERSON = "person"


class Guard(str, Enum):
    """The fence a move is written under: the environment lock's epoch or a task's lease's."""

    LOCK = "environment lock"
    LEASE = "task's lease"


class Transition(NamedTuple):
    """One allowed move of a record: from any of ``sources`` to ``to``, made by ``by``, written
    under one of ``guards``. A person's decision names its ``action``; from a state in ``keep``
    that decision changes nothing (mark-done of a task already done)."""

    name: str
    sources: frozenset[State]
    to: State
    by: frozenset[Actor]
    guards: frozenset[Guard]
    action: Action | None = None
    keep: frozenset[State] = frozenset()
    #: The person only asks (a running task is its runner's to move): the runner or worker
    #: makes the move at the task's next batch or progress report.
    asked: bool = False


def _states(*states: State) -> frozenset[State]:
    return frozenset(states)


_RUNNER, _WORKER, _PERSON = (frozenset({actor}) for actor in Actor)
_LOCK, _LEASE, _EITHER = frozenset({Guard.LOCK}), frozenset({Guard.LEASE}), frozenset(Guard)
# Not run yet, or to run again: what a runner starts and what it sends to a worker.
RUNNABLE = _states(State.PENDING, State.FAILED, State.INTERRUPTED, State.REVERTED, State.QUEUED)
NOT_RUN_YET = _states(State.PENDING, State.REVERTED, State.QUEUED)
SETTLEABLE = _states(State.INTERRUPTED, State.FAILED, State.CANCELLED)
# A task that ran can be rolled back from these states (its undo step runs): a long task a
# person paused or cancelled ran in part (``rollback --release`` of its release undoes that too).
ROLLBACK_FROM = _states(State.SUCCEEDED, State.FAILED, State.INTERRUPTED, State.AWAITING,
                        State.PAUSED, State.CANCELLED)
# How an attempt ends: its outcome, a human step asked, an undo that failed (the state it left).
_ENDS = _states(State.SUCCEEDED, State.FAILED, State.INTERRUPTED, State.AWAITING, State.REVERTED,
                State.PAUSED, State.CANCELLED)

#: Every allowed move of a record, and nothing else: ``Recorder.move`` refuses any other.
TRANSITIONS: tuple[Transition, ...] = (
    Transition("start", RUNNABLE, State.RUNNING, _RUNNER, _LOCK),
    Transition("start again (recurring)", frozenset(State) - {State.RUNNING}, State.RUNNING,
               _RUNNER, _LOCK),
    Transition("start the undo step", ROLLBACK_FROM, State.RUNNING, _RUNNER, _LOCK),
    *(Transition(f"end: {end}", _states(State.RUNNING), end, _RUNNER | _WORKER, _EITHER)
      for end in sorted(_ENDS)),
    Transition("send to a worker", RUNNABLE, State.QUEUED, _RUNNER, _LOCK),
    Transition("sending failed", _states(State.QUEUED), State.FAILED, _RUNNER, _LOCK),
    Transition("start on a worker", _states(State.QUEUED, State.INTERRUPTED), State.RUNNING,
               _WORKER, _LEASE),
    Transition("cannot load on a worker", _states(State.QUEUED, State.INTERRUPTED), State.FAILED,
               _WORKER, _LEASE),
    Transition("mark-done", NOT_RUN_YET | SETTLEABLE, State.SUCCEEDED, _PERSON, _LOCK,
               Action.MARK_DONE, keep=DONE),
    Transition("skip", NOT_RUN_YET | SETTLEABLE | {State.AWAITING}, State.SKIPPED, _PERSON, _LOCK,
               Action.SKIP, keep=DONE),
    Transition("pause (asked)", _states(State.RUNNING), State.PAUSED, _PERSON, _LOCK,
               Action.PAUSE, asked=True),
    Transition("resume", _states(State.PAUSED), State.PENDING, _PERSON, _LOCK, Action.RESUME),
    Transition("cancel (asked)", _states(State.RUNNING), State.CANCELLED, _PERSON, _LOCK,
               Action.CANCEL, asked=True),
    Transition("cancel", _states(State.PAUSED, State.QUEUED), State.CANCELLED, _PERSON, _LOCK,
               Action.CANCEL),
    Transition("forget", frozenset(State) - {State.RUNNING, State.PENDING}, State.PENDING,
               _PERSON, _LOCK, Action.FORGET, keep=_states(State.PENDING)),
    Transition("resolve --retry", SETTLEABLE, State.PENDING, _PERSON, _LOCK, Action.RESOLVE_RETRY),
    Transition("resolve --done", SETTLEABLE, State.SUCCEEDED, _PERSON, _LOCK, Action.RESOLVE_DONE),
    Transition("resolve --skip", SETTLEABLE, State.SKIPPED, _PERSON, _LOCK, Action.RESOLVE_SKIP),
    Transition("confirm", _states(State.AWAITING), State.SUCCEEDED, _PERSON, _LOCK, Action.CONFIRM),
    Transition("rollback --record-only", ROLLBACK_FROM, State.REVERTED, _PERSON, _LOCK,
               Action.ROLLBACK_RECORD_ONLY),
)
# The decisions a person takes with each action (cancel: asked of a running task, or made).
DECISIONS: dict[Action, tuple[Transition, ...]] = {}
for _move in TRANSITIONS:
    if _move.action is not None:
        DECISIONS[_move.action] = (*DECISIONS.get(_move.action, ()), _move)
RESOLVE_ACTIONS = {"retry": Action.RESOLVE_RETRY, "done": Action.RESOLVE_DONE,
                   "skip": Action.RESOLVE_SKIP}


class MoveRefused(Exception):
    """A move the table does not allow from the task's current state."""


def allows(by: Actor, before: State, after: State, guard: Guard) -> bool:
    """Whether the table holds the move ``before -> after`` by ``by`` under ``guard`` (a move a
    person only asks for is its runner's to make)."""
    return any(before in t.sources and t.to is after and by in t.by and guard in t.guards
               and not t.asked for t in TRANSITIONS)


def offered(state: State) -> list[Action]:
    """The decisions a person may take about a task in ``state`` (each changes it, or asks its
    runner to), in the table's order: what the CLI accepts, and what the console and the admin
    show."""
    return [action for action, moves in DECISIONS.items() if any(state in t.sources for t in moves)]


def decision(action: Action, before: State) -> Transition | None:
    """The move a person's ``action`` makes from ``before``; None when it changes nothing;
    MoveRefused when the action does not apply to that state."""
    moves = DECISIONS[action]
    for move in moves:
        if before in move.sources:
            return move
    if any(before in move.keep for move in moves):
        return None
    allowed = " or ".join(sorted({state.value for move in moves for state in move.sources}))
    raise MoveRefused(f"is {before}, not {allowed}: there is nothing to {action.verb}")


def next_state(action: Action, before: State) -> State | None:
    """The state a person's ``action`` moves a task in state ``before`` to (or asks its runner
    to); None when it changes nothing; MoveRefused when the action does not apply to that state."""
    move = decision(action, before)
    return None if move is None else move.to
