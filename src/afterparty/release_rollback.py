"""``afterparty rollback --release R``: the undo step of every task that ran in release R, the
newest first, from the source kept when it ran when its file is gone; R's held notices dropped;
R's clock stopped, so that its ``live_for`` tasks that never came due do not run for it (deployed
again, R starts anew). ``--dry-run`` shows the plan; ``--record-only`` marks the tasks reverted
without running anything. Every undo and decision is a move of the one table, recorded."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from afterparty.errors import TaskFileError, UsageError
from afterparty.results import RunReporter, TaskOutcome
from afterparty.session import Session, utc_now
from afterparty.states import ROLLBACK_FROM, Action, State, state_of

if TYPE_CHECKING:
    from afterparty.definition import Task
    from afterparty.loader import TaskFile
    from afterparty.records import Notice, Record
    from afterparty.release_records import RanAs

#: What a step of the plan does.
UNDO, NO_UNDO, CANNOT_LOAD, RECORD_ONLY = "undo", "no undo step", "cannot load", "record only"


@dataclass
class Step:
    """One task that ran in the release, and what the rollback does with it."""

    version: str
    name: str
    before: State
    what: str
    #: Its file, or its source as kept when it ran (``from_source``).
    task_file: TaskFile | None = None
    task: Task | None = None
    from_source: bool = False
    problem: str | None = None

    @property
    def label(self) -> str:
        return f"{self.version}_{self.name}"

    def plan_line(self, command: str = "afterparty") -> str:
        """What the rollback would do with it, in one line (``--dry-run``)."""
        where = " from the source kept when it ran (its file is gone)" if self.from_source else ""
        if self.what == UNDO:
            return f"would undo {self.label} ({self.before}){where}"
        if self.what == RECORD_ONLY:
            return f"would mark {self.label} reverted ({self.before}) without running anything"
        if self.what == NO_UNDO:
            return (f"would leave {self.label} ({self.before}): it has no undo step "
                    f"(`{command} rollback --release ... --record-only` marks it reverted)")
        return (f"would leave {self.label} ({self.before}): its source cannot be loaded "
                f"({self.problem}); `--record-only` marks it reverted")


@dataclass
class ReleaseRollback:
    """What ``rollback --release`` did (or, ``dry_run``, would do)."""

    release: str
    steps: list[Step] = field(default_factory=list)
    #: The held notices of the release, dropped (never sent).
    dropped: list[Notice] = field(default_factory=list)
    #: Tasks that waited for the release to stay live and never ran: they do not run for it.
    never_ran: list[str] = field(default_factory=list)
    outcomes: list[TaskOutcome] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def left(self) -> list[Step]:
        """The tasks left as they are (no undo step, or a source that cannot be loaded)."""
        return [step for step in self.steps if step.what in (NO_UNDO, CANNOT_LOAD)]

    @property
    def failed(self) -> list[TaskOutcome]:
        return [o for o in self.outcomes if o.state is not State.REVERTED]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def rollback_release(session: Session, reporter: RunReporter, release: str,
                     record_only: bool = False, dry_run: bool = False,
                     wait: float = 300.0) -> ReleaseRollback:
    """Roll back every task that ran in ``release`` here, as the module says."""
    from afterparty.outbox import Outbox
    from afterparty.releases import release_records

    if dry_run:
        with _sources() as directory:
            return _plan(session, release, record_only, directory, dry_run=True)
    with _sources() as directory, session.locked(wait, "wait", reporter.waiting_for_lock):
        done = _plan(session, release, record_only, directory)
        keeper, fence = release_records(session), session.lock.fence
        with session.recorder.writing(fence):
            keeper.drop_notices([notice.id for notice in done.dropped], utc_now())
        for step in done.steps:
            if step.what == RECORD_ONLY:
                _record_only(session, step, release)
                done.recorded.append(step.label)
            elif step.what == UNDO:
                outcome = _undo(session, reporter, step)
                done.outcomes.append(outcome)
                if outcome.state is not State.REVERTED:
                    return done  # the older tasks wait: a rollback goes newest first
                Outbox(session).send_due(step.version)  # what the undo step told, if it did
        with session.recorder.writing(fence):
            keeper.mark_rolled_back(release, utc_now())
        return done


def _plan(session: Session, release: str, record_only: bool, directory: str,
          dry_run: bool = False) -> ReleaseRollback:
    """Which tasks ran in the release (newest first) and what to do with each; its held notices;
    the tasks that waited for it to stay live."""
    from afterparty.loader import scan_tasks_dir
    from afterparty.releases import release_records

    keeper = release_records(session)
    records = session.recorder.read_records()
    ran = {version: ran_as for version, ran_as in keeper.ran_in(release).items()
           if version in records and state_of(records[version].state) in ROLLBACK_FROM}
    done = ReleaseRollback(release, dry_run=dry_run)
    done.dropped = keeper.held_notices(release)
    done.never_ran = _never_ran(records, release)
    if not (ran or done.dropped or done.never_ran):
        known = ", ".join(r.release_id for r in keeper.read_releases()) or "none yet"
        raise UsageError(f"no task ran in release {release!r} here and none of its notices is "
                         f"held: there is nothing to roll back (releases seen here: {known})")
    files = {task_file.version: task_file for task_file in scan_tasks_dir(session.settings.tasks_dir)}
    for version in sorted(ran, reverse=True):
        done.steps.append(_step(session, records[version], ran[version], files.get(version),
                                record_only, directory))
    return done


def _step(session: Session, record: Record, ran_as: RanAs, task_file: TaskFile | None,
          record_only: bool, directory: str) -> Step:
    step = Step(record.version, record.name, state_of(record.state), UNDO)
    if record_only:
        step.what = RECORD_ONLY
        return step
    if task_file is None:
        task_file = _write_source(directory, record, ran_as)
        step.from_source = True
    step.task_file = task_file
    try:
        step.task = _load(session, task_file)
    except TaskFileError as exc:
        step.what, step.problem = CANNOT_LOAD, "; ".join(exc.problems).replace(
            os.path.join(directory, ""), "")
        return step
    if step.task.undo_body is None:
        step.what = NO_UNDO
    return step


def _never_ran(records: dict[str, Record], release: str) -> list[str]:
    """The tasks a run kept waiting for ``release`` to stay live here (``live_for``)."""
    from afterparty.durations import live_reason_release

    return [f"{version}_{record.name}" for version, record in sorted(records.items())
            if record.waiting_reason and state_of(record.state) is State.PENDING
            and live_reason_release(record.waiting_reason) == release]


@contextmanager
def _sources() -> Iterator[str]:
    """A directory for the sources of tasks whose files are gone, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="afterparty-rollback-") as directory:
        yield directory


def _write_source(directory: str, record: Record, ran_as: RanAs) -> TaskFile:
    from afterparty.loader import TaskFile

    task_file = TaskFile(record.version, record.name, directory)
    with open(task_file.path, "w", encoding="utf-8", errors="surrogateescape") as out:
        out.write(ran_as.source)
    return task_file


def _load(session: Session, task_file: TaskFile) -> Task:
    """Import one task file, its own or a kept source: its imports resolve from the project."""
    from afterparty.loader import load_tasks

    root = session.settings.project_root
    if root not in sys.path:
        sys.path.insert(0, root)
    return load_tasks([task_file])[task_file.version]


def _undo(session: Session, reporter: RunReporter, step: Step) -> TaskOutcome:
    """Run one task's undo step: recorded as an attempt (action ``rollback``); ``reverted`` when
    it succeeds, as it was when it fails."""
    from afterparty.attempt import AttemptRunner
    from afterparty.interruptions import Interruptions

    assert step.task is not None and step.task_file is not None and step.task.undo_body is not None
    record = session.recorder.read_records()[step.version]
    with Interruptions().installed() as interruptions:
        return AttemptRunner(session, reporter, interruptions).run(
            step.task_file, step.task, record.attempts + 1, step.before, body=step.task.undo_body,
            action=Action.ROLLBACK, success_state=State.REVERTED, failure_state=step.before)


def _record_only(session: Session, step: Step, release: str) -> None:
    from afterparty.decisions import record_decision

    record_decision(session, step.version, step.name, Action.ROLLBACK_RECORD_ONLY, step.before,
                    f"rollback --release {release} --record-only")
