"""A person's decisions about tasks (mark-done, skip, forget, resolve, confirm, rollback
--record-only), each checked against the task's state and kept in its history."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from afterparty.errors import StateChanged, UsageError
from afterparty.session import Session, utc_now
from afterparty.states import (
    RESOLVE_ACTIONS,
    Action,
    Actor,
    MoveRefused,
    State,
    next_state,
    state_of,
)

if TYPE_CHECKING:
    from afterparty.graph import FoundTask
    from afterparty.records import Fence, Record

OnWait = Callable[[str | None], None]


def _no_report(holder: str | None) -> None:
    """Waiting for the lock silently."""


@dataclass
class Decision:
    """What a decision did to one task."""

    version: str
    name: str
    before: State
    after: State
    #: Only asked of the task's runner (pause, cancel of a running task): ``after`` is where
    #: the runner moves it at its next batch or progress report.
    asked: bool = False

    @property
    def changed(self) -> bool:
        return self.before is not self.after


def mark_done(session: Session, wanted: list[str], every: bool = False,
              on_wait: OnWait = _no_report) -> list[Decision]:
    """Record tasks as succeeded without running them (baseline a fresh environment)."""
    return decide(session, wanted, Action.MARK_DONE, None, on_wait, every=every)


def skip(session: Session, wanted: list[str], reason: str,
         on_wait: OnWait = _no_report, expected: State | None = None) -> list[Decision]:
    """Record tasks as skipped: they will not run, and the reason is kept."""
    return decide(session, wanted, Action.SKIP, reason, on_wait, expected=expected)


def forget(session: Session, wanted: list[str], on_wait: OnWait = _no_report) -> list[Decision]:
    """Make tasks pending again; their past attempts stay in the history."""
    return decide(session, wanted, Action.FORGET, None, on_wait)


def resolve(session: Session, wanted: str, choice: str, note: str | None = None,
            on_wait: OnWait = _no_report, expected: State | None = None) -> list[Decision]:
    """Settle an interrupted or failed task: run it again, record it done, or skip it."""
    if choice not in RESOLVE_ACTIONS:
        raise UsageError(f"choose one of --{' / --'.join(RESOLVE_ACTIONS)}")
    return decide(session, [wanted], RESOLVE_ACTIONS[choice], note, on_wait, expected=expected)


def confirm(session: Session, wanted: str, note: str | None = None,
            on_wait: OnWait = _no_report, expected: State | None = None) -> list[Decision]:
    """Record a human step that awaited confirmation as done, with who, when and the note."""
    return decide(session, [wanted], Action.CONFIRM, note, on_wait, expected=expected)


def pause(session: Session, wanted: str, note: str | None = None,
          expected: State | None = None) -> list[Decision]:
    """Ask a running task to stop at its next batch or progress report, keeping what it did;
    ``resume`` makes it pending again. Taken without the lock (a deploy may hold it)."""
    return [_ask(session, *_find(session, wanted), Action.PAUSE, note, expected)]


def resume(session: Session, wanted: str, note: str | None = None, on_wait: OnWait = _no_report,
           expected: State | None = None) -> list[Decision]:
    """Make a paused task pending again: the next run goes on from its checkpoint."""
    return decide(session, [wanted], Action.RESUME, note, on_wait, expected=expected)


def cancel(session: Session, wanted: str, note: str | None = None, on_wait: OnWait = _no_report,
           expected: State | None = None) -> list[Decision]:
    """Stop a task for good (until a person resolves it): a running one is asked to stop at its
    next batch or progress report; a paused or queued one is cancelled at once, under the lock."""
    found, record = _find(session, wanted)
    if record is not None and state_of(record.state) is State.RUNNING:
        return [_ask(session, found, record, Action.CANCEL, note, expected)]
    return decide(session, [wanted], Action.CANCEL, note, on_wait, expected=expected)


def _find(session: Session, wanted: str) -> tuple[FoundTask, Record | None]:
    """The task named by version or name, and its record (None before its first run)."""
    from afterparty.graph import find_tasks
    from afterparty.loader import scan_tasks_dir

    records = session.recorder.read_records()
    found = find_tasks(scan_tasks_dir(session.settings.tasks_dir), records, [wanted])[0]
    return found, records.get(found.version)


def _ask(session: Session, found: FoundTask, record: Record | None, action: Action,
         note: str | None, expected: State | None) -> Decision:
    """A request to a running task (states: an ``asked`` move): kept for its runner, which
    makes the move at the task's next batch or progress report."""
    before = state_of(record.state if record else None)
    if expected is not None and before is not expected:
        raise StateChanged(f"task {found.version} {found.name} is {before} now, not {expected} as "
                           "shown: someone changed it meanwhile; nothing was changed")
    try:
        after = next_state(action, before)
    except MoveRefused as refused:
        raise UsageError(f"task {found.version} {refused}") from None
    if after is None or not session.recorder.ask(found.version, found.name, action,
                                                 session.origin(), utc_now(), note):
        raise StateChanged(f"task {found.version} {found.name} is no longer running: nothing was "
                           "asked of it; see `afterparty status`")
    return Decision(found.version, found.name, before, after, asked=True)


def record_decision(session: Session, version: str, name: str, action: Action, before: State,
                    note: str | None = None) -> State:
    """Record one decision made while the caller holds the lock (a confirmation at the run's
    prompt); returns the state it left the task in."""
    after = next_state(action, before)
    assert after is not None
    recorder, fence = session.recorder, session.lock.fence
    with recorder.writing(fence):
        recorder.record_decision(version, name, "", action, before, after, session.origin(),
                                 utc_now(), note, fence)
    return after


def decide(session: Session, wanted: list[str], action: Action, note: str | None,
           on_wait: OnWait = _no_report, every: bool = False,
           expected: State | None = None) -> list[Decision]:
    """Apply one decision to tasks under the lock, all of them or none, as the transition table
    allows (states.DECISIONS); with ``expected``, only to tasks still in that state (what the
    person deciding saw)."""
    from afterparty.facts import read_source_facts
    from afterparty.graph import FoundTask, find_tasks
    from afterparty.loader import scan_tasks_dir

    files = scan_tasks_dir(session.settings.tasks_dir)
    decisions: list[Decision] = []
    with session.locked(on_wait=on_wait):
        recorder, fence = session.recorder, session.lock.fence
        records = recorder.read_records()
        targets = ([FoundTask(f.version, f.name, f) for f in files] if every
                   else find_tasks(files, records, wanted))
        now = utc_now()
        with _no_worker_holds(session, targets, records, fence) as states:
            for target in targets:
                before = states.get(target.version, State.PENDING)
                if expected is not None and before is not expected:
                    raise StateChanged(f"task {target.version} {target.name} is {before} now, not "
                                       f"{expected} as shown: someone changed it meanwhile; nothing "
                                       "was changed, look at it again before deciding")
                try:
                    after = next_state(action, before)
                except MoveRefused as refused:
                    raise UsageError(f"task {target.version} {refused}") from None
                if after is None:
                    decisions.append(Decision(target.version, target.name, before, before))
                    continue
                facts = read_source_facts(target.task_file.path) if target.task_file else None
                recorder.record_decision(target.version, target.name,
                                         facts.description if facts else "", action, before, after,
                                         session.origin(), now, note, fence,
                                         checksum=facts.checksum if facts else None)
                if action is Action.FORGET:
                    recorder.clear_progress(target.version)
                decisions.append(Decision(target.version, target.name, before, after))
    return decisions


@contextmanager
def _no_worker_holds(session: Session, targets: list[FoundTask], records: dict[str, Record],
                     fence: Fence) -> Iterator[dict[str, State]]:
    """Inside a fenced transaction, the targets' states as a decision may start from them.
    A task queued for a worker or running on one is decided about only while no worker holds
    its lease (a worker that took it would overwrite the decision, or be overwritten): the
    leases are held while deciding, and a held one refuses the decision, nothing changed. A
    task left running by a runner or worker that is gone is recorded interrupted first."""
    from afterparty.lease import orphans_of

    states = {v: state_of(r.state) for v, r in records.items()}
    leased = [t.version for t in targets if states.get(t.version) in (State.RUNNING, State.QUEUED)]
    recorder = session.recorder
    with orphans_of(session, leased) as free, recorder.writing(fence):
        busy = [version for version in leased if version not in free]
        if busy:
            raise UsageError(
                f"task {busy[0]} is {states[busy[0]]} and a background worker holds its lease "
                f"(it is running it, or about to): nothing was changed; decide once it has ended "
                f"(`{session.settings.command} status`)")
        running = [v for v in leased if states[v] is State.RUNNING]
        for version in recorder.mark_orphans_interrupted(utc_now(), running, fence, Actor.RUNNER):
            states[version] = State.INTERRUPTED
        yield states
