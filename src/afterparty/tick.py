"""``afterparty tick``: what moves between deploys. Tasks a run found waiting whose time came
(``live_for``, ``not_before``, a dependency done since) or whose condition (``when``) must be
asked again, held notices that are due, and reminders of human steps. Short and idempotent,
meant for every minute: with nothing due it is one query, no task file imported, no lock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from afterparty.executor import Executor
from afterparty.lock import LockOutcome
from afterparty.outbox import Outbox
from afterparty.planner import reason_now
from afterparty.release_records import RecordsLook, ReleaseRecords
from afterparty.reminders import Reminder, due_reminders, hold_reminders, reminder_plans
from afterparty.results import RunReporter, RunResult
from afterparty.session import Session, utc_now
from afterparty.states import State, state_of

if TYPE_CHECKING:
    from afterparty.loader import TaskFile


@dataclass
class TickResult:
    """What one tick did: the tasks it ran and the notices it sent (``run``), the reminders it
    sent, and whether anything was due at all."""

    run: RunResult = field(default_factory=RunResult)
    #: The waiting tasks it found due (each ran, or waits on, as ``run`` decided under the lock).
    due: list[str] = field(default_factory=list)
    nothing_due: bool = False
    #: Another runner held the lock: the next tick does it.
    busy: bool = False
    #: The reminders and escalations it held and sent.
    reminders: list[Reminder] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return self.run.exit_code

    def summary(self) -> str:
        """One line: what this tick did."""
        if self.nothing_due:
            return "tick: nothing due"
        if self.busy:
            return "tick: another runner holds the lock; the next tick does it"
        parts = [f"{len(self.run.succeeded)} task(s) ran"] if self.due else []
        if self.run.failed:
            parts.append(f"{len(self.run.failed)} failed")
        if self.run.waiting:
            parts.append(f"{len(self.run.waiting)} still waiting")
        if self.reminders:
            parts.append(f"{len(self.reminders)} reminder(s)")
        if self.run.notices_sent:
            parts.append(f"{self.run.notices_sent} notice(s) sent")
        if self.run.notices_undelivered:
            parts.append(f"{len(self.run.notices_undelivered)} notice(s) not delivered")
        return "tick: " + (", ".join(parts) or "done")


class Due:
    """What a tick has to do, found without the lock (it may only conclude "nothing")."""

    def __init__(self, look: RecordsLook, files: list[TaskFile]) -> None:
        present = {task_file.version for task_file in files}
        self.tasks = [version for version, reason in sorted(look.waiting.items())
                      if version in present and may_run_now(reason, look.states)]
        self.notices = look.first_notice_due is not None and look.first_notice_due <= utc_now()

    def __bool__(self) -> bool:
        return bool(self.tasks or self.notices)


def may_run_now(reason: str, states: dict[str, State]) -> bool:
    """Whether a task a run kept waiting may run now: what held it no longer does (its time
    came, its dependencies succeeded), or it waits on a condition, which only asking tells."""
    return reason.startswith("condition ") or reason_now(reason, states) is None


def tick(session: Session, reporter: RunReporter, wait: float = 0.0) -> TickResult:
    """Do what became due since the last run or tick, under the lock (waiting ``wait`` seconds
    for it, then leaving it to the next tick)."""
    files = _task_files(session)
    look = _look(session)
    due = Due(look, files)
    plans = reminder_plans(session, look.awaiting_since, files) if look.awaiting_since else {}
    remind = bool(due_reminders(session, plans, look.awaiting_since))
    if not (due or remind):
        return TickResult(nothing_due=True)
    result = TickResult(due=due.tasks)
    if due.tasks:
        result.run = Executor(session, reporter).run(due.tasks, wait=wait, if_busy="skip")
        result.busy = result.run.busy_skipped
    if (due.notices or remind) and not result.busy:
        with session.locked(wait, "skip", reporter.waiting_for_lock) as outcome:
            result.busy = outcome is LockOutcome.BUSY
            if outcome is LockOutcome.ACQUIRED:
                result.reminders = hold_reminders(session, plans)
                Outbox(session).tell(result.run)
    return result


def _task_files(session: Session) -> list[TaskFile]:
    """The task files; a tasks directory ``run`` would refuse is refused here too (exit 2)."""
    from afterparty.loader import list_task_files, scan_tasks_dir

    files = list_task_files(session.settings.tasks_dir)
    return files if files is not None else scan_tasks_dir(session.settings.tasks_dir)


def _look(session: Session) -> RecordsLook:
    """The records in one query; records older than the outbox are read as they are."""
    seen = ReleaseRecords(session.database, session.settings.table_prefix).look(None, waits=True)
    if seen is not None:
        return seen
    records = session.recorder.read_records()
    not_run = (State.PENDING.value, State.REVERTED.value)
    return RecordsLook(
        {version: state_of(record.state) for version, record in records.items()}, None, None, {},
        {v: r.waiting_reason for v, r in records.items() if r.waiting_reason and r.state in not_run},
        {v: r.finished_at or "" for v, r in records.items() if r.state == State.AWAITING.value})
