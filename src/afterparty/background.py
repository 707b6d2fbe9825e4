"""Background tasks (``@task(background=True)``): sending them to a worker from ``run``, running
one on a worker exactly once under its lease, and waiting for them (``run --wait-background``).
The engine itself (Celery) is afterparty.contrib.celery's."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from afterparty.errors import AfterpartyError, StateChanged, StoppedBySignal
from afterparty.lease import TaskLease, lease_if_free
from afterparty.results import SilentReporter, TaskOutcome
from afterparty.session import Session, utc_now
from afterparty.states import Action, Actor, State, state_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from celery import Celery

    from afterparty.config import Settings
    from afterparty.definition import Task
    from afterparty.loader import TaskFile
    from afterparty.records import Record

log = logging.getLogger("afterparty")


@dataclass(frozen=True)
class Message:
    """What a worker needs to find the environment and the task: never the database URL (a
    password has no business in a broker). The worker reaches the records through its own
    configuration, and ``environment_id`` proves that they are the same records."""

    environment_id: str
    tasks_dir: str
    environment: str
    table_prefix: str
    version: str
    release: str | None = None


@dataclass
class Background:
    """A background task of one run: sent to a worker now, or found running on one."""

    version: str
    name: str
    #: on_interrupt="hold": once interrupted, it waits for a person instead of being resumed.
    hold: bool
    state: State = State.QUEUED
    error: str | None = None
    worker: str | None = None
    duration: float | None = None


class Sender:
    """Sends the background tasks of one run: each is recorded ``queued`` (fenced, committed)
    before its message leaves, so a worker that gets it at once finds it queued."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._app: Celery | None = None

    def check_configured(self) -> None:
        """ConfigError, before anything runs, when the Celery app cannot be found."""
        from afterparty.backends.url import parse_url
        from afterparty.errors import ConfigError

        settings = self.session.settings
        if parse_url(settings.database_url).redacted != self.session.url.redacted:
            raise ConfigError(
                "a task has @task(background=True), but this command keeps records through the "
                "application's database connection, which a worker cannot be sent: run "
                "`afterparty run` with the database URL (see README \"On Celery workers\")")
        try:
            from afterparty.contrib.celery import load_app
        except ModuleNotFoundError as exc:  # celery itself
            raise ConfigError(f"a task has @task(background=True) but {exc.name} is not installed: "
                              "pip install 'afterparty[celery]'") from None
        self._app = load_app(settings)

    def send(self, task_file: TaskFile, task: Task, before: State) -> State | TaskOutcome:
        """Record the task (read in state ``before``) queued and send it: QUEUED. RUNNING when
        a worker holds its lease (it took the message between this run's read of the records and
        now: nothing is written or sent). When sending fails, the task is recorded failed with the error (the
        next ``run`` sends it again) and that outcome is returned."""
        from afterparty.backends.url import redact
        from afterparty.contrib.celery import send

        if self._app is None:
            self.check_configured()
        assert self._app is not None
        session, recorder = self.session, self.session.recorder
        session.lock.check()
        fence = session.lock.fence
        # Holding the task's lease while the record says queued: no worker is inside an
        # attempt then, so a worker's `running` is never overwritten by `queued`.
        lease = lease_if_free(session, task_file.version)
        if lease is None:
            return State.RUNNING
        try:
            with recorder.writing(fence):
                attempt_id = recorder.record_decision(
                    task_file.version, task_file.name, task.description, Action.ENQUEUE, before,
                    State.QUEUED, session.origin(), utc_now(), "sent to a Celery worker", fence,
                    Actor.RUNNER)
        finally:
            lease.release()
        try:
            send(self._app, message_for(session.settings, task_file.version,
                                        session.origin().release_id, recorder.environment_id()))
        except Exception as exc:  # whatever the broker's client raises: the deploy goes on
            error = (f"could not send it to a Celery worker ({type(exc).__name__}: "
                     f"{redact(str(exc))}): check the broker; the next run sends it again")
            with recorder.writing(fence):
                recorder.record_finish(attempt_id, task_file.version, State.FAILED, utc_now(), 0.0,
                                       error, "", fence, expected=State.QUEUED)
            return TaskOutcome(task_file.version, task_file.name, State.FAILED, 0.0, error)
        return State.QUEUED


def message_for(settings: Settings, version: str, release: str | None,
                environment_id: str) -> Message:
    """The message of one task: its tasks directory relative to the project (a worker's checkout
    may live elsewhere), unless it lies outside it."""
    tasks_dir = os.path.abspath(settings.tasks_dir)
    root = os.path.abspath(settings.project_root)
    if os.path.commonpath([tasks_dir, root]) == root:
        tasks_dir = os.path.relpath(tasks_dir, root)
    return Message(environment_id=environment_id, tasks_dir=tasks_dir,
                   environment=settings.environment, table_prefix=settings.table_prefix,
                   version=version, release=release)


# --- on the worker ------------------------------------------------------------------------


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
    return replace(settings, tasks_dir=os.path.join(settings.project_root, message.tasks_dir))


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
    if found == message.environment_id:
        return None
    return (f"{message.version}: not run: this worker's records ({session.url.redacted}, table "
            f"prefix {message.table_prefix!r}) are not the ones of the run that queued it; give "
            "the workers the deploy's AFTERPARTY_DATABASE_URL (the task stays queued)")


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
    from afterparty.executor import Executor
    from afterparty.notices import Notices

    if state is State.INTERRUPTED and task.on_interrupt == "hold":
        Notices(session).task_held(task_file)
        return f"{version} was interrupted and is on_interrupt=\"hold\": it waits for a person"
    from afterparty.attempt import AttemptRunner
    from afterparty.results import RunResult

    reporter = WorkerReporter()
    result = RunResult()
    try:
        final = Executor(session, reporter).run_attempts(AttemptRunner(session, reporter),
                                                         task_file, task, record, result)
    except StateChanged as changed:  # a decision came first: it stands, nothing ran
        return f"{version}: not run: {changed}"
    return f"{version} {final}"


def _load(session: Session, version: str) -> tuple[TaskFile, Task]:
    from afterparty.errors import UsageError
    from afterparty.loader import load_checked, scan_tasks_dir

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


# --- waiting for them ---------------------------------------------------------------------


def still_going(state: State) -> bool:
    """Queued for a worker, or running on one."""
    return state in (State.QUEUED, State.RUNNING)


def worker_gone(session: Session, version: str) -> bool:
    """For a task recorded running on a worker: whether that worker is gone (nobody holds the
    task's lease: a worker holds it from before it records `running` until its outcome is
    committed). Then the task is recorded interrupted under the lease, taken with a new epoch
    so that the gone worker, if it only lost its session, can commit nothing more."""
    lease = lease_if_free(session, version)
    if lease is None:
        return False
    try:
        with session.recorder.writing(lease.fence):
            session.recorder.mark_orphans_interrupted(utc_now(), [version], lease.fence,
                                                      Actor.RUNNER)
    finally:
        lease.release()
    return True


def wait_for(session: Session, tasks: list[Background],
             finished: Callable[[Background], None]) -> int | None:
    """Poll the records (no lock held), with a growing pause, until every task in ``tasks`` has
    ended: succeeded, failed, or interrupted because its worker is gone (each poll tries the
    lease of a running task: a free one means its worker died); ``finished`` is told of each as
    it ends. Returns the signal that stopped the wait (SIGINT, SIGTERM), or None."""
    from afterparty.interruptions import Interruptions

    left = list(tasks)
    delay = 0.1
    with Interruptions().installed() as interruptions:
        try:
            while left:
                records = session.recorder.read_records()
                for task in list(left):
                    record = records.get(task.version)
                    state = state_of(record.state if record else None)
                    if state is State.RUNNING and worker_gone(session, task.version):
                        state, record = State.INTERRUPTED, session.recorder.read_records().get(
                            task.version)
                        delay = 0.1
                    if still_going(state):
                        continue
                    left.remove(task)
                    _settle(session, task, state, record)
                    finished(task)
                if left:
                    interruptions.sleep(delay)
                    delay = min(delay * 1.5, 5.0)
        except StoppedBySignal as stop:
            return stop.signum
    return None


def _settle(session: Session, task: Background, state: State, record: Record | None) -> None:
    """Fill in how a task ended, from its record and its last attempt."""
    task.state = state
    task.error = record.last_error if record else None
    attempts = session.recorder.read_attempts(task.version)
    if attempts:
        task.worker = attempts[-1].host
        task.duration = attempts[-1].duration


def exit_code_of(tasks: list[Background]) -> int:
    """As if they had run inline: 1 when one failed, 5 when one is held, else 0."""
    if any(t.state in (State.FAILED, State.INTERRUPTED) and not t.hold for t in tasks):
        return 1
    return 5 if any(t.state is State.INTERRUPTED for t in tasks) else 0
