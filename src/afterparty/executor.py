"""Runs the pending tasks of one environment under its lock: order, dependencies, retries,
human steps and holds. No SQL and no signal handling of its own (see attempt.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from afterparty.errors import StoppedBySignal, UsageError
from afterparty.lock import LockOutcome
from afterparty.planner import Readiness, lock_free_look, pending_task_files, readiness
from afterparty.results import (
    Awaiting,
    RunReporter,
    RunResult,
    TaskOutcome,
    tell_planned,
)
from afterparty.session import Session, utc_now
from afterparty.states import Action, State, state_of
from afterparty.task_run import run_task

if TYPE_CHECKING:
    from collections.abc import Callable

    from afterparty.attempt import AttemptRunner
    from afterparty.background.sending import Sender
    from afterparty.context import Context
    from afterparty.definition import Task
    from afterparty.durations import ReleaseClock
    from afterparty.loader import TaskFile
    from afterparty.notices import Notices
    from afterparty.outbox import Outbox
    from afterparty.records import Record
    from afterparty.results import Background


# How often ``run --wait-background`` sends a task again whose worker is gone.
RESENDS = 3


class Executor:
    """Runs pending tasks of one environment."""

    def __init__(self, session: Session, reporter: RunReporter) -> None:
        self.session = session
        self.reporter = reporter
        self._task_files: list[TaskFile] | None = None
        self._notices: Notices | None = None
        self._outbox: Outbox | None = None
        #: How long the release deployed now has been live here (``live_for``).
        self._clock: ReleaseClock | None = None
        self._sender: Sender | None = None

    @property
    def notices(self) -> Notices:
        """The runner's notices (made when there is something to tell: not on the no-op path)."""
        if self._notices is None:
            from afterparty.notices import Notices

            self._notices = Notices(self.session)
        return self._notices

    def run(self, wanted: list[str], keep_going: bool = False, wait: float = 300.0,
            if_busy: str = "wait", group: str | None = None) -> RunResult:
        """Run every pending (or every selected) task in version order, under the lock.

        With no selection, the lock-free check comes first: when nothing is pending, no task
        file is imported and the lock is not taken.
        """
        if not wanted and group is None:
            look = lock_free_look(self.session.settings, self.session.database)
            if look is not None and look.new_release is not None:
                from afterparty.releases import release_records

                release_records(self.session).record_deployed(look.new_release, utc_now())
            if look is not None and not look.pending:
                result = RunResult(awaiting=[_awaiting(f) for f in look.awaiting])
                if look.notices_due:
                    self.send_held_notices(result, wait, if_busy)
                if look.rolled_back:
                    from afterparty.releases import named

                    result.rolled_back = {r.release: r.labels for r in named(self.session,
                                                                             look.rolled_back)}
                return result
        files = self._selected_files(wanted)
        if not self._pending_without_lock(files):
            return RunResult(awaiting=self._awaiting_steps(files))
        with self.session.locked(wait, if_busy, self.reporter.waiting_for_lock,
                                 finished=lambda: not self._pending_without_lock(files)) as outcome:
            if outcome is LockOutcome.BUSY:
                return RunResult(busy_skipped=True)
            if outcome is LockOutcome.FINISHED_ELSEWHERE:
                return RunResult()
            return self._run_locked(files, keep_going, group)

    def send_held_notices(self, result: RunResult, wait: float = 300.0,
                          if_busy: str = "wait") -> LockOutcome:
        """Under the lock: send the held notices that are due (a runner killed between a task's
        commit and the sending left them; an ``after=`` notice's time came)."""
        with self.session.locked(wait, if_busy, self.reporter.waiting_for_lock) as outcome:
            if outcome is LockOutcome.ACQUIRED:
                self._send_notices(result)
        return outcome

    def _send_notices(self, result: RunResult, version: str | None = None) -> None:
        """Holding the lock: send what is due (of one task that just succeeded, or all)."""
        if self._outbox is None:
            from afterparty.outbox import Outbox

            self._outbox = Outbox(self.session)
        self._outbox.tell(result, version)

    def follow_background(self, result: RunResult, finished: Callable[[Background], None],
                          keep_going: bool = False, wait: float = 300.0,
                          if_busy: str = "wait") -> int | None:
        """``run --wait-background``: wait for the tasks ``result`` sent to workers, and as they
        end, go on in this command: what waited on them runs (inline, or sent to a worker in
        turn), and a task whose worker is gone is sent again (at most ``RESENDS`` times; one
        that holds waits for a person). Everything is added to ``result``; returns the signal
        that stopped the waiting, or None."""
        from afterparty.background.waiting import wait_for

        sent_again: dict[str, int] = {}
        waiting_on = [t for t in result.background if t.state in (State.QUEUED, State.RUNNING)]
        while waiting_on:
            stopped = wait_for(self.session, waiting_on, finished)
            if stopped is not None:
                return stopped
            again = [t.version for t in waiting_on if t.state is State.INTERRUPTED and not t.hold
                     and sent_again.get(t.version, 0) < RESENDS]
            if not again and not any(t.state is State.SUCCEEDED for t in waiting_on):
                return None
            for version in again:
                sent_again[version] = sent_again.get(version, 0) + 1
            wanted = again + [v for v in result.waiting if v not in again]
            if not wanted:
                return None
            more = self.run(wanted, keep_going, wait, if_busy)
            if more.stopped_by is not None:
                return more.stopped_by
            result.absorb(more)
            waiting_on = [t for t in more.background if t.state in (State.QUEUED, State.RUNNING)]
        return None

    def dry_run(self, wanted: list[str], group: str | None = None) -> RunResult:
        """What ``run`` would do now, checking the task files; changes nothing. ``planned`` is
        what would run, in the order it would (dependencies first), supposing each succeeds;
        ``waiting`` is what would wait, and why (a dependency, ``not_before``, ``when``)."""
        from afterparty.attempt import AttemptRunner
        from afterparty.releases import release_clock

        files = self._selected_files(wanted)
        pending = self._pending_without_lock(files)
        tasks = self._load(pending)
        self._clock = release_clock(self.session)
        candidates = [f for f in pending if self._meant_for_here(tasks[f.version], group)]
        states = {v: state_of(r.state) for v, r in self.session.recorder.read_records().items()}
        runner = AttemptRunner(self.session, self.reporter)
        result = RunResult()
        for task_file, ready in self._in_dependency_order(
                candidates, tasks, states, lambda task_file: self._dry_context(runner, task_file)):
            if ready.reason:
                result.waiting[task_file.version] = ready.reason
                continue
            result.planned.append(task_file)
            task = tasks[task_file.version]
            if task.background:
                from afterparty.results import Background

                result.background.append(Background(task_file.version, task_file.name,
                                                    task.on_interrupt == "hold"))
            # A human step is asked for and a background task queued, not done: what depends on
            # them waits.
            states[task_file.version] = State.AWAITING if task.manual else \
                State.QUEUED if task.background else State.SUCCEEDED
        return result

    def _dry_context(self, runner: AttemptRunner, task_file: TaskFile) -> Callable[[], Context]:
        """A ``when`` condition's ctx in a dry run: it creates no records table (no idempotency
        key) and notifies nobody."""
        from afterparty.context import Context, TaskConnection

        session = self.session
        return lambda: Context(
            version=task_file.version, name=task_file.name, env=session.settings.environment,
            release=session.origin().release_id, attempt=0, idempotency_key="",
            db=TaskConnection(session.database.connection.driver_connection),
            log=runner.task_logger(task_file), notify_urls=[])

    def _every_task_file(self) -> list[TaskFile]:
        """The tasks directory, listed once per command (a run used to list it four times)."""
        if self._task_files is None:
            from afterparty.loader import scan_tasks_dir

            self._task_files = scan_tasks_dir(self.session.settings.tasks_dir)
        return self._task_files

    def _selected_files(self, wanted: list[str]) -> list[TaskFile]:
        """Every task file, or those named; a name whose file is gone has nothing to run."""
        from afterparty.graph import find_tasks

        files = self._every_task_file()
        if not wanted:
            return files
        chosen = {found.version for found in find_tasks(files, {}, wanted)}
        return [f for f in files if f.version in chosen]

    def _pending_without_lock(self, files: list[TaskFile]) -> list[TaskFile]:
        """A lock-free look at what is pending; it may only conclude "nothing to do"."""
        states = self.session.recorder.read_states()
        return pending_task_files(files, states, self.session.settings.environment)

    def _awaiting_steps(self, files: list[TaskFile]) -> list[Awaiting]:
        """The human steps among ``files`` that await a person."""
        states = self.session.recorder.read_states()
        return [_awaiting(f) for f in files if states.get(f.version) is State.AWAITING]

    def _meant_for_here(self, task: Task, group: str | None) -> bool:
        return task.runs_in(self.session.settings.environment) and group in (None, task.group)

    def _load(self, task_files: list[TaskFile]) -> dict[str, Task]:
        from afterparty.graph import load_checked

        return load_checked(task_files, self._every_task_file(),
                            self.session.settings.project_root)

    def _run_locked(self, files: list[TaskFile], keep_going: bool, group: str | None) -> RunResult:
        """Pending is decided again here, under the lock, from records read now."""
        from afterparty.attempt import AttemptRunner
        from afterparty.interruptions import Interruptions
        from afterparty.lease import orphans_of
        from afterparty.releases import release_clock, rolled_back_here

        recorder, fence = self.session.recorder, self.session.lock.fence
        self._clock = release_clock(self.session, record=True)
        records = recorder.read_records()
        running = [v for v, r in records.items() if r.state == State.RUNNING.value]
        interrupted: list[str] = []
        if running:  # most runs find none: one read of the records, no write
            with orphans_of(self.session, running) as orphans, recorder.writing(fence):
                interrupted = recorder.mark_orphans_interrupted(utc_now(), orphans, fence)
            records = recorder.read_records()
        pending = pending_task_files(files, {v: r.run_state for v, r in records.items()},
                                     self.session.settings.environment)
        tasks = self._load(pending)
        to_run = [f for f in pending if self._meant_for_here(tasks[f.version], group)]
        if any(tasks[f.version].background for f in to_run):
            from afterparty.background.sending import Sender

            self._sender = Sender(self.session)
            self._sender.check_configured()  # a configuration error before anything runs
        result = RunResult(planned=to_run, interrupted_found=interrupted)
        tell_planned(self.reporter, len(to_run))
        with Interruptions().installed() as interruptions:
            runner = AttemptRunner(self.session, self.reporter, interruptions)
            try:
                self._run_in_order(runner, to_run, tasks, records, result, keep_going)
            except StoppedBySignal as stop:
                result.stopped_by = stop.signum
            if result.stopped_by is None:
                result.stopped_by = interruptions.signal
        self._send_notices(result)
        result.rolled_back = {r.release: r.labels for r in rolled_back_here(
            self.session, {f.version for f in self._every_task_file()})}
        asked_now = {a.version for a in result.awaiting}
        result.awaiting += [_awaiting(f) for f in files
                            if state_of(records[f.version].state if f.version in records else None)
                            is State.AWAITING and f.version not in asked_now]
        self.notices.run_summary(result)
        return result

    def _in_dependency_order(
            self, to_run: list[TaskFile], tasks: dict[str, Task], states: dict[str, State],
            context_for: Callable[[TaskFile], Callable[[], Context]],
            stop: Callable[[], bool] = lambda: False) -> Iterator[tuple[TaskFile, Readiness]]:
        """Each task with its readiness, in version order, except that a task waiting on another
        of this run comes after it. The caller puts the outcome of each task into ``states``
        before asking for the next; what still waits at the end waits on a dependency."""
        from afterparty.graph import by_version_or_name

        by_key = by_version_or_name(self._every_task_file())
        left = dict.fromkeys(to_run)
        versions_left = {f.version for f in to_run}
        progress = True
        while left and progress:
            progress = False
            for task_file in list(left):
                if stop():
                    return
                ready = readiness(tasks[task_file.version], task_file, states, by_key,
                                  versions_left, context_for(task_file), self._clock)
                if ready.later:
                    continue  # depends on a task of this run that has not run yet
                del left[task_file]
                versions_left.discard(task_file.version)
                progress = progress or ready.reason is None
                yield task_file, ready
        for task_file in left:
            yield task_file, Readiness(f"depends on {', '.join(tasks[task_file.version].depends_on)}")

    def _run_in_order(self, runner: AttemptRunner, to_run: list[TaskFile], tasks: dict[str, Task],
                      records: dict[str, Record], result: RunResult, keep_going: bool) -> None:
        """Run the tasks in dependency order, until one fails (unless ``keep_going``), a held
        task stops the run, or a signal does."""
        states = {version: state_of(record.state) for version, record in records.items()}
        for task_file, ready in self._in_dependency_order(
                to_run, tasks, states, runner.condition_context,
                stop=lambda: runner.interruptions.signal is not None):
            task, record = tasks[task_file.version], records.get(task_file.version)
            if ready.reason:
                self._wait(task_file, task, ready, result)
                continue
            if record is not None and state_of(record.state) is State.INTERRUPTED \
                    and task.on_interrupt == "hold":
                result.held = task_file
                self.notices.task_held(task_file)
                return
            if task.background:
                state = self._send_to_worker(task_file, task, record, result)
            else:
                state = run_task(runner, self.notices, task_file, task, record, result)
                # Notices held before this run (a runner killed before sending) are sent at its
                # end, with every other one due.
                if state is State.SUCCEEDED and task_file.version in runner.notifying:
                    self._send_notices(result, task_file.version)
            states[task_file.version] = state
            if state is State.INTERRUPTED and task.on_interrupt == "hold":
                # Its outcome is unknown (the commit failed): a person decides, as after a crash.
                result.held = task_file
                self.notices.task_held(task_file)
                return
            if state in (State.FAILED, State.INTERRUPTED) and not keep_going:
                return

    def _wait(self, task_file: TaskFile, task: Task, ready: Readiness, result: RunResult) -> None:
        assert ready.reason is not None
        result.waiting[task_file.version] = ready.reason
        self.reporter.task_waiting(task_file, ready.reason)
        recorder = self.session.recorder
        with recorder.writing(self.session.lock.fence):
            recorder.record_waiting(task_file.version, task_file.name, task.description, ready.reason)

    def _send_to_worker(self, task_file: TaskFile, task: Task, record: Record | None,
                        result: RunResult) -> State:
        """A background task is sent to a worker (recorded ``queued``), not run here; one
        still running on a live worker (it holds the task's lease) is left to it. A task
        found queued is sent again: a second delivery does nothing (the lease, the record)."""
        from afterparty.results import Background

        assert self._sender is not None  # made, and its configuration checked, before the run
        entry = Background(task_file.version, task_file.name, task.on_interrupt == "hold")
        if record is not None and state_of(record.state) is State.RUNNING:
            entry.state = State.RUNNING
        else:
            sent = self._sender.send(task_file, task, state_of(record.state if record else None))
            if isinstance(sent, TaskOutcome):
                result.outcomes.append(sent)
                self.reporter.task_finished(sent)
                self.notices.task_failed(task_file, sent.error)
                return State.FAILED
            entry.state = sent
        result.background.append(entry)
        told = getattr(self.reporter, "task_sent_to_worker", None)
        if told is not None:
            told(task_file, entry.state)
        return entry.state

    def rollback(self, wanted: str, record_only: bool = False, wait: float = 300.0) -> TaskOutcome:
        """Run a task's undo step and mark it reverted (pending again); or only record that."""
        from afterparty.attempt import AttemptRunner
        from afterparty.decisions import decide
        from afterparty.graph import find_tasks
        from afterparty.interruptions import Interruptions
        from afterparty.states import ROLLBACK_FROM

        if record_only:
            (decision,) = decide(self.session, [wanted], Action.ROLLBACK_RECORD_ONLY, None,
                                 self.reporter.waiting_for_lock)
            return TaskOutcome(decision.version, decision.name, State.REVERTED, 0.0)
        files = self._every_task_file()
        with self.session.locked(wait, "wait", self.reporter.waiting_for_lock):
            records = self.session.recorder.read_records()
            found = find_tasks(files, records, [wanted])[0]
            record, task_file = records.get(found.version), found.task_file
            if record is None:
                raise UsageError(f"{wanted!r} has never run here: there is nothing to roll back")
            before = state_of(record.state)
            if before not in ROLLBACK_FROM:
                raise UsageError(f"task {found.version} is {before}: there is nothing to roll back")
            if task_file is None:
                raise UsageError(f"the file of task {found.version} is gone: use --record-only")
            task = self._load([task_file])[found.version]
            if task.undo_body is None:
                raise UsageError(
                    f"task {task_file.label} has no undo step (decorate one with @run.undo); "
                    "use --record-only to mark it reverted without running anything"
                )
            with Interruptions().installed() as interruptions:
                return AttemptRunner(self.session, self.reporter, interruptions).run(
                    task_file, task, record.attempts + 1, before, body=task.undo_body,
                    action=Action.ROLLBACK, success_state=State.REVERTED, failure_state=before)


def _awaiting(task_file: TaskFile) -> Awaiting:
    """A human step found awaiting, with its owner as its file names it (not imported)."""
    from afterparty.facts import read_source_facts

    return Awaiting(task_file.version, task_file.name, read_source_facts(task_file.path).owner)
