"""Human decisions about tasks: mark-done, skip, forget and resolve, each kept in the history."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from afterparty.environment import Environment, utc_now
from afterparty.errors import UsageError
from afterparty.loader import read_source_facts, scan_tasks_dir
from afterparty.planner import FoundTask, find_tasks
from afterparty.recorder import (
    AWAITING,
    DONE_STATES,
    FAILED,
    INTERRUPTED,
    PENDING,
    SKIPPED,
    SUCCEEDED,
)

RESOLVE_CHOICES = {"retry": PENDING, "done": SUCCEEDED, "skip": SKIPPED}


@dataclass
class Decision:
    """What a decision did to one task."""

    version: str
    name: str
    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def mark_done(environment: Environment, wanted: list[str], every: bool = False,
              on_wait: Callable[[str | None], None] = lambda holder: None) -> list[Decision]:
    """Record tasks as succeeded without running them (baseline a fresh environment)."""
    return _decide(environment, wanted, every, "mark-done", SUCCEEDED, None, on_wait,
                   keep=DONE_STATES)


def skip(environment: Environment, wanted: list[str], reason: str,
         on_wait: Callable[[str | None], None] = lambda holder: None) -> list[Decision]:
    """Record tasks as skipped: they will not run, and the reason is kept."""
    return _decide(environment, wanted, False, "skip", SKIPPED, reason, on_wait, keep=DONE_STATES)


def forget(environment: Environment, wanted: list[str],
           on_wait: Callable[[str | None], None] = lambda holder: None) -> list[Decision]:
    """Make tasks pending again; their past attempts stay in the history."""
    return _decide(environment, wanted, False, "forget", PENDING, None, on_wait,
                   keep=frozenset({PENDING}))


def resolve(environment: Environment, wanted: str, choice: str, note: str | None = None,
            on_wait: Callable[[str | None], None] = lambda holder: None) -> list[Decision]:
    """Settle an interrupted or failed task: run it again, record it done, or skip it."""
    if choice not in RESOLVE_CHOICES:
        raise UsageError(f"choose one of --{' / --'.join(RESOLVE_CHOICES)}")
    return _decide(environment, [wanted], False, f"resolve --{choice}", RESOLVE_CHOICES[choice],
                   note, on_wait, keep=frozenset(), only_from=frozenset({INTERRUPTED, FAILED}))


def confirm(environment: Environment, wanted: str, note: str | None = None,
            on_wait: Callable[[str | None], None] = lambda holder: None) -> list[Decision]:
    """Record a human step that awaited confirmation as done, with who, when and the note."""
    return _decide(environment, [wanted], False, "confirm", SUCCEEDED, note, on_wait,
                   keep=frozenset(), only_from=frozenset({AWAITING}))


def record_decision(environment: Environment, version: str, name: str, action: str, state: str,
                    note: str | None = None) -> None:
    """Record one decision made while the caller holds the lock (a confirmation at the run's
    prompt, ``rollback --record-only``)."""
    backend = environment.backend
    backend.begin()
    environment.recorder.record_action(version, name, "", action, state, environment.origin(),
                                       utc_now(), note)
    backend.commit()


def _decide(environment: Environment, wanted: list[str], every: bool, action: str, state: str,
            note: str | None, on_wait: Callable[[str | None], None], keep: frozenset[str],
            only_from: frozenset[str] | None = None) -> list[Decision]:
    files = scan_tasks_dir(environment.settings.tasks_dir)
    decisions: list[Decision] = []
    with environment.locked(on_wait=on_wait):
        recorder, backend = environment.recorder, environment.backend
        records = recorder.read_records()
        targets = ([FoundTask(f.version, f.name, f) for f in files] if every
                   else find_tasks(files, records, wanted))
        now = utc_now()
        backend.begin()
        for target in targets:
            record = records.get(target.version)
            before = record.state if record else PENDING
            if only_from is not None and before not in only_from:
                raise UsageError(
                    f"task {target.version} is {before}, not {' or '.join(sorted(only_from))}: "
                    f"there is nothing to {action.split()[0]}"
                )
            if before in keep or (before == state and action != "forget"):
                decisions.append(Decision(target.version, target.name, before, before))
                continue
            facts = read_source_facts(target.task_file.path) if target.task_file else None
            checksum = facts.checksum if facts else None
            description = facts.description if facts else ""
            recorder.record_action(target.version, target.name, description, action, state,
                                   environment.origin(), now, note, checksum)
            decisions.append(Decision(target.version, target.name, before, state))
        backend.commit()
    return decisions
