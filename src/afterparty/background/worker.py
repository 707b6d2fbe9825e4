"""On a Celery worker: one background task run exactly once, whatever Celery delivers, under the
task's lease (never the environment lock: a long backfill must not block a deploy)."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from afterparty.background.sending import Message
from afterparty.errors import AfterpartyError, StateChanged
from afterparty.lease import TaskLease
from afterparty.results import SilentReporter, TaskOutcome
from afterparty.session import Session, utc_now
from afterparty.states import Action, Actor, State, state_of

if TYPE_CHECKING:
    from afterparty.config import Settings
    from afterparty.definition import Task
    from afterparty.loader import TaskFile
    from afterparty.records import Record

log = logging.getLogger("afterparty")


class WorkerSession(Session):
    """A worker's session: its "lock" is the task's lease, never the environment lock (a long
    backfill must not block a deploy); commits are fenced by the lease's epoch."""

    def __init__(self, settings: Settings, version: str) -> None:
        super().__init__(settings)
        self.version = version
        self._lease: TaskLease | None = None

    @property
    def fence_lock(self) -> TaskLease:
        if self._lease is None:
            self._lease = TaskLease(self.database, self.recorder, self.version)
            self.other_locks.append(self._lease.database_lock)
        return self._lease


class WorkerReporter(SilentReporter):
    """A worker tells its log when a task starts and ends (output is kept with the attempt)."""

    def task_started(self, task_file: TaskFile, description: str) -> None:
        log.info("afterparty: running %s (%s)", task_file.label, description)

    def task_finished(self, outcome: TaskOutcome) -> None:
        log.info("afterparty: %s %s %s in %.2fs", outcome.version, outcome.name, outcome.state,
                 outcome.duration)


def worker_settings(message: Message) -> Settings:
    """The worker's own settings (database, notifications), with the environment the message
    names; its tasks directory is the message's, in the worker's project."""
    from afterparty.config import load_settings

    settings = load_settings({"environment": message.environment,
                              "table_prefix": message.table_prefix, "release": message.release})
    return settings.replace(tasks_dir=os.path.join(settings.project_root, message.tasks_dir))


def run_on_worker(message: Message) -> str:
    """Run one background task once, whatever Celery delivers: a second delivery finds the
    lease taken (another worker runs it) or the record no longer queued, and does nothing.
    Returns what happened, in words (Celery logs it)."""
    session = WorkerSession(worker_settings(message), message.version)
    try:
        other = _other_records(session, message)
        if other is not None:
            log.error("afterparty: %s", other)
            return other
        if not session.fence_lock.try_take():
            return f"{message.version}: another worker is running it; nothing to do"
        return _run_leased(session, message.version)
    finally:
        session.close()


def _other_records(session: Session, message: Message) -> str | None:
    """Why this worker's database is not the one whose run sent the message, or None."""
    from afterparty.backends.base import MissingTableError

    try:
        found = session.recorder.environment_id()
    except MissingTableError:
        found = ""
    if found != message.environment_id:
        return (f"{message.version}: not run: this worker's records ({session.url.redacted}, "
                f"table prefix {message.table_prefix!r}) are not the ones of the run that queued "
                "it; give the workers the deploy's AFTERPARTY_DATABASE_URL (the task stays queued)")
    database = session.database
    if message.place and database.dialect.place(database) != message.place:
        return (f"{message.version}: not run: this worker's records ({session.url.redacted}) are "
                "a copy of the ones of the run that queued it (a restored backup, a clone, a file "
                "baked into an image), not the same database; give the workers the deploy's "
                "AFTERPARTY_DATABASE_URL (the task stays queued)")
    return None


def _run_leased(session: WorkerSession, version: str) -> str:
    recorder, fence = session.recorder, session.fence_lock.fence
    record = recorder.read_records().get(version)
    state = state_of(record.state if record else None)
    if state not in (State.QUEUED, State.RUNNING):
        return f"{version} is {state}: nothing to do"
    if state is State.RUNNING:  # we hold its lease now: the worker that ran it is gone
        with recorder.writing(fence):
            recorder.mark_orphans_interrupted(utc_now(), [version], fence, Actor.WORKER)
        state = State.INTERRUPTED
        record = recorder.read_records().get(version)
    try:
        task_file, task = _load(session, version)
    except AfterpartyError as exc:
        _record_unrunnable(session, version, record, state, str(exc))
        return f"{version} failed: {exc}"
    from afterparty.notices import Notices

    if state is State.INTERRUPTED and task.on_interrupt == "hold":
        Notices(session).task_held(task_file)
        return f"{version} was interrupted and is on_interrupt=\"hold\": it waits for a person"
    from afterparty.attempt import AttemptRunner
    from afterparty.results import RunResult
    from afterparty.task_run import run_task

    reporter = WorkerReporter()
    result = RunResult()
    try:
        final = run_task(AttemptRunner(session, reporter), Notices(session), task_file, task,
                         record, result)
    except StateChanged as changed:  # a decision came first: it stands, nothing ran
        return f"{version}: not run: {changed}"
    return f"{version} {final}"


def _load(session: Session, version: str) -> tuple[TaskFile, Task]:
    from afterparty.errors import UsageError
    from afterparty.graph import load_checked
    from afterparty.loader import scan_tasks_dir

    settings = session.settings
    files = scan_tasks_dir(settings.tasks_dir)
    found = [f for f in files if f.version == version]
    if not found:
        raise UsageError(f"the worker has no task file {version} in {settings.tasks_dir}: deploy "
                         "this release's code to the workers too, then run again")
    return found[0], load_checked(found, files, settings.project_root)[version]


def _record_unrunnable(session: Session, version: str, record: Record | None, before: State,
                       error: str) -> None:
    """A task the worker cannot even load is recorded failed (the next run sends it again)."""
    recorder, fence = session.recorder, session.fence_lock.fence
    with recorder.writing(fence):
        recorder.record_decision(version, record.name if record else version, "", Action.RUN,
                                 before, State.FAILED, session.origin(), utc_now(),
                                 "the worker could not load the task", fence, Actor.WORKER,
                                 error=error)
