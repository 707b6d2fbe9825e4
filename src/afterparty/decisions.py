"""A person's decisions about tasks (mark-done, skip, forget, resolve, confirm, rollback
--record-only), each checked against the task's state and kept in its history."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from afterparty.errors import UsageError
from afterparty.session import Session, utc_now
from afterparty.states import RESOLVE_ACTIONS, Action, MoveRefused, State, next_state, state_of

if TYPE_CHECKING:
    from afterparty.graph import FoundTask
    from afterparty.records import Record

OnWait = Callable[[str | None], None]


def _no_report(holder: str | None) -> None:
    """Waiting for the lock silently."""


class StateChanged(UsageError):
    """The task is no longer in the state the person deciding saw (someone decided meanwhile)."""


@dataclass
class Decision:
    """What a decision did to one task."""

    version: str
    name: str
    before: State
    after: State

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


def record_decision(session: Session, version: str, name: str, action: Action, state: State,
                    note: str | None = None) -> None:
    """Record one decision made while the caller holds the lock (a confirmation at the run's
    prompt)."""
    recorder = session.recorder
    with recorder.writing():
        recorder.record_decision(version, name, "", action, state, session.origin(), utc_now(), note)


def decide(session: Session, wanted: list[str], action: Action, note: str | None,
           on_wait: OnWait = _no_report, every: bool = False,
           expected: State | None = None) -> list[Decision]:
    """Apply one decision to tasks under the lock, all of them or none (states.MOVES); with
    ``expected``, only to tasks still in that state (what the person deciding saw)."""
    from afterparty.facts import read_source_facts
    from afterparty.graph import FoundTask, find_tasks
    from afterparty.loader import scan_tasks_dir

    files = scan_tasks_dir(session.settings.tasks_dir)
    decisions: list[Decision] = []
    with session.locked(on_wait=on_wait):
        recorder = session.recorder
        records = recorder.read_records()
        targets = ([FoundTask(f.version, f.name, f) for f in files] if every
                   else find_tasks(files, records, wanted))
        now = utc_now()
        with _no_worker_running(session, targets, records), recorder.writing():
            for target in targets:
                record = records.get(target.version)
                before = state_of(record.state if record else None)
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
                                         facts.description if facts else "", action, after,
                                         session.origin(), now, note,
                                         facts.checksum if facts else None)
                if action is Action.FORGET:
                    recorder.clear_progress(target.version)
                decisions.append(Decision(target.version, target.name, before, after))
    return decisions


@contextmanager
def _no_worker_running(session: Session, targets: list[FoundTask],
                       records: dict[str, Record]) -> Iterator[None]:
    """Refuse to decide about a task a live worker is running (it holds the task's lease: its
    outcome would overwrite the decision); hold the leases of the others while deciding."""
    from afterparty.lease import orphans_of

    running = [t.version for t in targets if t.version in records
               and state_of(records[t.version].state) is State.RUNNING]
    if not running:
        yield
        return
    session.database.rollback()
    with orphans_of(session, running) as free:
        busy = [version for version in running if version not in free]
        if busy:
            raise UsageError(
                f"task {busy[0]} is running on a background worker now (the worker holds its "
                f"lease): nothing was changed; decide once it has ended "
                f"(`{session.settings.command} status`)")
        yield
