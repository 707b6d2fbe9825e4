"""One attempt at a task: recorded running first, then its body with output captured, a
timeout and signals, and its outcome committed together with its work, fenced by the lock."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from afterparty.errors import DatabaseError, LockLostError, StateChanged, StoppedBySignal
from afterparty.interruptions import Deadline, Interruptions
from afterparty.long_tasks import StopAsked
from afterparty.results import RunReporter, TaskOutcome
from afterparty.session import Session, utc_now
from afterparty.states import Action, Actor, Guard, State

if TYPE_CHECKING:
    import logging

    from afterparty.capture import OutputCapture
    from afterparty.context import Context
    from afterparty.definition import Task, TaskBody
    from afterparty.loader import TaskFile
    from afterparty.long_tasks import LongTask
    from afterparty.records import Fence

# The savepoint that opens the task's transaction before its body runs: the task's own
# transaction blocks nest inside it, and its absence afterwards shows that the task ended
# the transaction itself.
SAVEPOINT = "afterparty_task"


class AttemptRunner:
    """Runs attempts of tasks in one session, each as its own recorded attempt."""

    def __init__(self, session: Session, reporter: RunReporter,
                 interruptions: Interruptions | None = None) -> None:
        self.session = session
        self.reporter = reporter
        self.interruptions = interruptions or Interruptions()
        # A task may fork: its child must never go on as this runner (see _run_body).
        self.pid = os.getpid()
        #: The tasks whose body held a notice (``ctx.notify``), to be sent once they succeed.
        self.notifying: set[str] = set()

    @property
    def fence(self) -> Fence:
        """What this runner's writes are guarded by: the environment lock, or on a worker the
        task's lease."""
        return self.session.fence_lock.fence

    @property
    def actor(self) -> Actor:
        return Actor.WORKER if self.fence.guard is Guard.LEASE else Actor.RUNNER

    def run(self, task_file: TaskFile, task: Task, attempt: int, expected: State,
            body: TaskBody | None = None, action: Action = Action.RUN,
            success_state: State = State.SUCCEEDED,
            failure_state: State | None = None) -> TaskOutcome:
        """One attempt at a task read in state ``expected``: check the lock, record it running
        (committed), run the body inside the task's transaction, then commit the outcome with
        the work. StoppedBySignal after recording it interrupted; LockLostError when the lock is
        no longer ours; StateChanged when someone else moved the record since it was read."""
        from afterparty.facts import read_with_checksum

        session, recorder = self.session, self.session.recorder
        session.fence_lock.check()
        # A run's running record reaches the disk with its outcome's commit, unless the task
        # must never repeat: a machine crash that loses it leaves the task as it was before
        # this attempt, and it runs again, as it would once found interrupted.
        with recorder.writing(self.fence, synced=action is not Action.RUN
                              or task.on_interrupt == "hold"):
            source, checksum = read_with_checksum(task_file.path)
            attempt_id = recorder.record_start(
                task_file.version, task_file.name, task.description, checksum,
                session.origin(), utc_now(), self.fence, expected, self.actor, action=action,
                recurring=task.recurring)
            if action is Action.RUN:
                keep_source(session, task_file, attempt_id, checksum, source)
        self.reporter.task_started(task_file, task.description)
        long_task = self._long_task(task_file, task)
        try:
            return self._attempt(task_file, task, attempt, attempt_id, body or task.body,
                                 success_state, failure_state, long_task)
        finally:
            long_task.close()

    def _attempt(self, task_file: TaskFile, task: Task, attempt: int, attempt_id: int,
                 body: TaskBody, success_state: State, failure_state: State | None,
                 long_task: LongTask) -> TaskOutcome:
        capture = self._capture(task_file, attempt)
        ctx = self.context(task_file, attempt, capture.logger, long_task, attempt_id)
        started = time.monotonic()
        deadline = Deadline(task.timeout)
        raised = self._run_body(body, ctx, capture, deadline, task.atomic)
        if ctx.notices_held:
            self.notifying.add(task_file.version)

        def finish(state: State, error: str | None) -> TaskOutcome:
            try:
                self._record_end(attempt_id, task_file, state, started, error, capture.text,
                                 failure_state, long_task)
            except StateChanged:  # the commit that seemed to fail had gone through
                state, error = self._state_now(task_file.version), None
            outcome = TaskOutcome(task_file.version, task_file.name, state, time.monotonic() - started,
                                  error)
            self.reporter.task_finished(outcome)
            return outcome

        if isinstance(raised, LockLostError):  # a batch found the lock gone: nothing more is ours
            self.session.database.rollback()
            raise raised
        if self.interruptions.signal is not None:
            self._abandon_transaction()
            finish(State.INTERRUPTED, f"stopped by {signal.Signals(self.interruptions.signal).name}")
            raise StoppedBySignal(self.interruptions.signal)
        if deadline.expired:
            self._abandon_transaction()
            return finish(State.FAILED, f"timed out after {task.timeout:g} s")
        if isinstance(raised, StopAsked):  # a person asked: what committed so far is kept
            self.session.database.rollback()
            stopped = State.PAUSED if raised.action is Action.PAUSE else State.CANCELLED
            return finish(stopped, f"{stopped} at a person's request (who and why: "
                                   f"`{self.session.settings.command} show {task_file.version}`)")
        if raised is not None:
            self.session.database.rollback()
            return finish(State.FAILED, describe_failure(raised, task_file))
        ended = self._commit_success(attempt_id, task_file, started, capture, success_state,
                                     long_task if task.atomic else None)
        if ended is None and not task.atomic:
            ended = self._record_success(attempt_id, task_file, started, capture, success_state,
                                         long_task)
        if ended is not None:
            return finish(*ended)
        outcome = TaskOutcome(task_file.version, task_file.name, success_state,
                              time.monotonic() - started)
        self.reporter.task_finished(outcome)
        return outcome

    def _state_now(self, version: str) -> State:
        from afterparty.states import state_of

        record = self.session.recorder.read_records().get(version)
        return state_of(record.state if record else None)

    def _run_body(self, body: TaskBody, ctx: Context, capture: OutputCapture,
                  deadline: Deadline, atomic: bool = True) -> BaseException | None:
        """Run the body in the task's transaction (``atomic=False``: with each statement
        committing by itself, outside its batches); whatever it raises is returned, not raised.
        A child the body forked that comes back here ends at once: it must never go on as a
        second runner, nor touch the runner's connections and locks (they are the parent's)."""
        database = self.session.database
        if atomic:
            database.begin_task()
            database.execute(f"SAVEPOINT {SAVEPOINT}")
        else:
            database.rollback()  # nothing is open (the running record was committed), reads aside
            database.connection.set_autocommit(True)
        try:
            with capture, database.connection.long_statements(), \
                    database.dialect.signals_reach_statements(database), \
                    self.interruptions.at_once(), deadline:
                try:
                    body(ctx)
                except BaseException as exc:
                    self._end_a_forked_child(exc)
                    raise
                self._end_a_forked_child(None)
        except BaseException as exc:  # a task may raise anything, SystemExit included
            return exc
        finally:
            if not atomic:
                self._end_autocommit()
        return None

    def _end_a_forked_child(self, raised: BaseException | None) -> None:
        """In a process the body forked (``os.fork``) and that returned or raised out of the
        body: exit it now, with the code ``sys.exit`` gave (1 for an exception), without the
        cleanups that would close the parent's connections or release its lock."""
        if os.getpid() == self.pid:
            return
        code = 0
        if isinstance(raised, SystemExit):
            code = raised.code if isinstance(raised.code, int) else (0 if raised.code is None else 1)
        elif raised is not None:
            code = 1
            import traceback

            traceback.print_exception(raised, file=sys.__stderr__)
        for stream in (sys.__stdout__, sys.__stderr__):
            if stream is not None:
                stream.flush()
        os._exit(code)

    def _end_autocommit(self) -> None:
        connection = self.session.database.connection
        errors: tuple[type[BaseException], ...] = (DatabaseError, *connection.driver_errors)
        try:
            connection.set_autocommit(False)
        except errors:
            self.session.database.reopen()  # a session that ended: the next write needs a new one

    def _abandon_transaction(self) -> None:
        """A signal or the timeout came: stop any statement still running, then roll back."""
        database = self.session.database
        if database.dialect.cancel_statement(database):
            database.reopen()
        else:
            database.rollback()

    def _commit_success(self, attempt_id: int, task_file: TaskFile, started: float,
                        capture: OutputCapture, success_state: State,
                        long_task: LongTask | None) -> tuple[State, str] | None:
        """Write the success record in the task's own transaction and commit both together
        (fenced); the outcome to record instead when that cannot be done: failed when the task
        ended its transaction itself; interrupted when the commit failed, for its outcome is
        unknown then (the body's outside effects happened; ``on_interrupt`` decides whether it
        runs again). ``long_task`` None: the task was not atomic, its work is committed already
        (``_record_success``)."""
        if long_task is None:
            return None
        database, recorder = self.session.database, self.session.recorder
        try:
            note = self._release_savepoint()
            if note is not None and not database.dialect.ddl_commits_implicitly:
                database.rollback()
                database.query("SELECT 1")  # a session that ended (DatabaseError) ended no work
                return State.FAILED, note
            output = capture.text + (f"\n[afterparty] {note}\n" if note else "")
            long_task.keep_latest()
            recorder.record_finish(attempt_id, task_file.version, State.SUCCEEDED, utc_now(),
                                   time.monotonic() - started, None, output, self.fence,
                                   self.actor, task_state=success_state)
            recorder.commit(self.fence)
        except DatabaseError as exc:
            database.rollback()
            if self._session_alive():  # the server refused the commit: nothing of it is kept
                return State.FAILED, (
                    f"the task's body finished, but its work and its success record could not be "
                    f"committed ({exc}): its database work was rolled back and the next run runs "
                    "it again; check any outside effect it had before that")
            return State.INTERRUPTED, (
                f"the task's body finished, but the session ended while its work and its success "
                f"record were committed ({exc}): whether they were is unknown, so it counts as "
                "interrupted (on_interrupt decides whether it runs again); check any outside "
                "effect it had")
        return None

    def _session_alive(self) -> bool:
        try:
            self.session.database.query("SELECT 1")
        except DatabaseError:
            return False
        self.session.database.rollback()
        return True

    def _record_success(self, attempt_id: int, task_file: TaskFile, started: float,
                        capture: OutputCapture, success_state: State,
                        long_task: LongTask) -> tuple[State, str] | None:
        """An ``atomic=False`` task's success record (its work committed as it went); when it
        cannot be committed, the task is interrupted: its work is done, its record is not."""
        recorder = self.session.recorder
        try:
            with recorder.writing(self.fence):
                long_task.keep_latest()
                recorder.record_finish(attempt_id, task_file.version, State.SUCCEEDED, utc_now(),
                                       time.monotonic() - started, None, capture.text, self.fence,
                                       self.actor, task_state=success_state)
        except DatabaseError as exc:
            return State.INTERRUPTED, (
                f"the task's body finished, but its success record could not be committed ({exc}): "
                "its work is done and its outcome unknown; it runs again (from its last checkpoint, "
                "if it keeps one) unless it is on_interrupt=\"hold\"")
        return None

    def _release_savepoint(self) -> str | None:
        """None when the task's transaction is the one the runner opened; else what happened.
        DatabaseError when that transaction is still open but failed, so nothing of it can commit."""
        database = self.session.database
        try:
            database.execute(f"RELEASE SAVEPOINT {SAVEPOINT}")
        except DatabaseError as failed:
            try:
                # The savepoint is still there: the transaction was not ended, it failed (on
                # PostgreSQL, a statement of the task failed and the task went on).
                database.execute(f"ROLLBACK TO SAVEPOINT {SAVEPOINT}")
            except DatabaseError:
                pass
            else:
                raise failed
            return ("the task's transaction was ended before the task returned (a COMMIT or "
                    "ROLLBACK through the driver, or a statement that commits by itself, such as "
                    "DDL on MySQL/MariaDB): the work before that point was committed on its own")
        return None

    def _record_end(self, attempt_id: int, task_file: TaskFile, state: State, started: float,
                    error: str | None, output: str, task_state: State | None,
                    long_task: LongTask | None = None) -> None:
        recorder = self.session.recorder

        def write() -> None:
            with recorder.writing(self.fence):
                if long_task is not None:
                    long_task.keep_latest()
                recorder.record_finish(attempt_id, task_file.version, state, utc_now(),
                                       time.monotonic() - started, error, output, self.fence,
                                       self.actor, task_state=task_state)

        try:
            write()
        except DatabaseError:
            # The session may have ended while the task ran (an idle timeout such as
            # idle_in_transaction_session_timeout or wait_timeout, a task that closed it): a new
            # one records the outcome, rather than leaving the task `running` as if we had died.
            # If the failed commit went through after all, the record is no longer running:
            # StateChanged says so, and what was committed stands.
            self.session.database.reopen()
            write()

    def record_awaiting(self, task_file: TaskFile, task: Task, attempt: int,
                        expected: State) -> str | TaskOutcome:
        """Record a human step (read in state ``expected``) as awaiting a person; returns its
        instructions. When its body
        cannot give them (it raised or exited), the step is recorded failed and that outcome
        is returned instead."""
        from afterparty.facts import file_checksum

        session, recorder = self.session, self.session.recorder
        session.fence_lock.check()
        error = None
        try:
            instructions = task.instructions(self.context(task_file, attempt, self.task_logger(task_file)))
        except StoppedBySignal:
            raise
        except BaseException as exc:  # a body may raise anything, SystemExit included
            instructions, error = "", describe_failure(exc, task_file)
        now, fence = utc_now(), self.fence
        with recorder.writing(fence):
            attempt_id = recorder.record_start(task_file.version, task_file.name, task.description,
                                               file_checksum(task_file.path), session.origin(), now,
                                               fence, expected, self.actor)
            recorder.record_finish(attempt_id, task_file.version,
                                   State.AWAITING if error is None else State.FAILED, now, 0.0, error,
                                   instructions, fence, self.actor)
        if error is not None:
            outcome = TaskOutcome(task_file.version, task_file.name, State.FAILED, 0.0, error)
            self.reporter.task_finished(outcome)
            return outcome
        return instructions

    def task_logger(self, task_file: TaskFile) -> logging.Logger:
        from afterparty.capture import OutputCapture

        return OutputCapture(f"afterparty.task.{task_file.label}", self.reporter.task_output).logger

    def _capture(self, task_file: TaskFile, attempt: int) -> OutputCapture:
        """The body's capture: its stderr and its log records go to the reporter's methods for
        them when it has them (optional, so that reporters written before them still work)."""
        from afterparty.capture import OutputCapture

        origin = self.session.origin()
        return OutputCapture(
            f"afterparty.task.{task_file.label}", self.reporter.task_output,
            show_err=getattr(self.reporter, "task_error_output", None),
            show_record=getattr(self.reporter, "task_log", None),
            fields={"environment": origin.environment, "release": origin.release_id,
                    "version": task_file.version, "name": task_file.name, "attempt": attempt})

    def _long_task(self, task_file: TaskFile, task: Task) -> LongTask:
        from afterparty.long_tasks import LongTask

        origin = self.session.origin()
        return LongTask(self.session, task_file.version, task.atomic, self.fence, self.interruptions,
                        task.throttle, getattr(self.reporter, "task_progress", None),
                        worker=f"{origin.host} (pid {origin.pid})")

    def context(self, task_file: TaskFile, attempt: int, log: logging.Logger,
                long_task: LongTask | None = None, attempt_id: int | None = None) -> Context:
        """The ``ctx`` a task body (or its ``when`` condition) receives; a body's holds its
        notices with attempt ``attempt_id`` (afterparty.outbox)."""
        from afterparty.context import Context, TaskConnection
        from afterparty.outbox import NoticeHolder

        session = self.session
        notices = None if long_task is None or attempt_id is None else NoticeHolder(
            session, task_file.version, attempt_id, self.fence, long_task)
        database = session.database
        return Context(
            version=task_file.version, name=task_file.name,
            env=session.settings.environment, release=session.origin().release_id,
            attempt=attempt,
            idempotency_key=idempotency_key(session.recorder.environment_id(), task_file.version),
            db=TaskConnection(database.connection.driver_connection), log=log,
            notify_urls=session.settings.notify, open_session=database.connection.orm_session,
            long_task=long_task, notices=notices,
        )

    def condition_context(self, task_file: TaskFile) -> Callable[[], Context]:
        """Makes the ``ctx`` of a ``when`` condition, only when there is one to call."""
        return lambda: self.context(task_file, 0, self.task_logger(task_file))


def keep_source(session: Session, task_file: TaskFile, attempt_id: int, checksum: str,
                source: bytes) -> None:
    """With the running record: the task's source as this attempt runs it (``source``, its
    file's bytes), and the release, so that ``rollback --release`` can run its undo step once
    the file is gone."""
    from afterparty.releases import release_records

    # As a text file reads it: UTF-8 (odd bytes kept as surrogates), universal newlines.
    text = source.decode("utf-8", "surrogateescape").replace("\r\n", "\n").replace("\r", "\n")
    release_records(session).keep_source(task_file.version, attempt_id,
                                         session.origin().release_id, checksum, text)


def describe_failure(exc: BaseException, task_file: TaskFile) -> str:
    """The error recorded for a body that raised: its traceback, and for ways of leaving that
    look like stopping the whole run, why they only failed the task."""
    text = _task_traceback(exc, task_file)
    if isinstance(exc, SystemExit):
        return (f"{text}the task called sys.exit({exc.code!r}): that fails the task (exit code "
                f"{exc.code!r}); it does not end the run")
    if isinstance(exc, KeyboardInterrupt):
        return f"{text}the task raised KeyboardInterrupt itself (no signal came): that fails the task"
    return text


def _task_traceback(exc: BaseException, task_file: TaskFile) -> str:
    """The traceback from the task file's frames on: the runner's own frames are noise."""
    import os
    import traceback

    tb = exc.__traceback__
    target = os.path.abspath(task_file.path)
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) != target:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))


def idempotency_key(environment_id: str, version: str) -> str:
    """Stable for every attempt of one task in one environment, different everywhere else."""
    import hashlib

    return hashlib.sha256(f"{environment_id}:{version}".encode()).hexdigest()[:32]

