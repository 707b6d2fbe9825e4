"""Plans which tasks are pending and runs them one at a time, recording every attempt."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING, Protocol

from afterparty.config import Settings
from afterparty.definition import Task, TaskBody
from afterparty.environment import Environment, utc_now
from afterparty.errors import StoppedBySignal, TaskFileError, UnknownTaskError, UsageError
from afterparty.loader import TaskFile, file_checksum, load_tasks, scan_tasks_dir
from afterparty.lock import BUSY, FINISHED_ELSEWHERE
from afterparty.planner import (
    Readiness,
    dependency_problems,
    find_tasks,
    pending_task_files,
    readiness,
)
from afterparty.recorder import (
    AWAITING,
    FAILED,
    INTERRUPTED,
    REVERTED,
    SUCCEEDED,
    Record,
    error_summary,
)

if TYPE_CHECKING:
    import logging

    from afterparty.context import Context


class RunReporter(Protocol):
    """What the runner tells whoever drives it (the CLI prints it)."""

    def waiting_for_lock(self, holder: str | None) -> None: ...
    def task_started(self, task_file: TaskFile, description: str) -> None: ...
    def task_output(self, text: str) -> None: ...
    def task_finished(self, outcome: TaskOutcome) -> None: ...
    def task_waiting(self, task_file: TaskFile, reason: str) -> None: ...
    def task_retrying(self, task_file: TaskFile, delay: float) -> None: ...
    def manual_step(self, task_file: TaskFile, instructions: str) -> bool: ...


class TaskTimeout(BaseException):
    """Raised inside a task body when its ``timeout`` runs out (not catchable as Exception)."""


@dataclass
class TaskOutcome:
    """How one task's attempt ended."""

    version: str
    name: str
    state: str
    duration: float
    error: str | None = None


@dataclass
class Awaiting:
    """A human step waiting for ``afterparty confirm``."""

    version: str
    name: str
    owner: str | None


@dataclass
class Plan:
    """A lock-free look: every task file, those selected, those of them that look pending."""

    all_files: list[TaskFile]
    selected: list[TaskFile]
    pending: list[TaskFile]
    states: dict[str, str]


@dataclass
class RunResult:
    """What one ``run`` did; ``exit_code`` is what the command line ends with."""

    planned: list[TaskFile] = field(default_factory=list)
    outcomes: list[TaskOutcome] = field(default_factory=list)
    already_done: list[TaskFile] = field(default_factory=list)
    waiting: dict[str, str] = field(default_factory=dict)
    awaiting: list[Awaiting] = field(default_factory=list)
    busy_skipped: bool = False
    interrupted_found: list[str] = field(default_factory=list)
    stopped_by: int | None = None
    held: TaskFile | None = None

    @property
    def final_outcomes(self) -> list[TaskOutcome]:
        """The last attempt of each task this run tried (retries make several)."""
        return list({o.version: o for o in self.outcomes}.values())

    @property
    def failed(self) -> list[TaskOutcome]:
        return [o for o in self.final_outcomes if o.state in (FAILED, INTERRUPTED)]

    @property
    def did_something(self) -> bool:
        return bool(self.outcomes or self.held)

    @property
    def exit_code(self) -> int:
        if self.stopped_by is not None:
            return 128 + self.stopped_by
        if self.failed:
            return 1
        return 5 if self.held is not None else 0


def select_task_files(files: list[TaskFile], wanted: list[str]) -> list[TaskFile]:
    """The task files named by version or name, in version order; UnknownTaskError otherwise."""
    if not wanted:
        return files
    by_key = {f.version: f for f in files} | {f.name: f for f in files}
    unknown = [w for w in wanted if w not in by_key]
    if unknown:
        raise UnknownTaskError(
            f"no task file has version or name {unknown[0]!r}: see `afterparty status`"
        )
    chosen = {by_key[w].version for w in wanted}
    return [f for f in files if f.version in chosen]


class Executor:
    """Runs pending tasks of one environment."""

    def __init__(self, environment: Environment, reporter: RunReporter) -> None:
        self.environment = environment
        self.reporter = reporter
        self._in_task_body = False
        self._stop_signal: int | None = None

    @property
    def settings(self) -> Settings:
        return self.environment.settings

    def plan(self, wanted: list[str]) -> Plan:
        """Lock-free, one listing and one query: what looks pending among the selected tasks."""
        all_files = scan_tasks_dir(self.settings.tasks_dir)
        selected = select_task_files(all_files, wanted)
        states = self.environment.recorder.read_states()
        return Plan(all_files, selected,
                    pending_task_files(selected, states, self.settings.environment), states)

    def dry_run(self, wanted: list[str], group: str | None = None) -> RunResult:
        """What ``run`` would do now, checking the task files; changes nothing."""
        plan = self.plan(wanted)
        tasks = self._import(plan.pending, plan.all_files)
        planned = [f for f in plan.pending if self._selected(tasks[f.version], group)]
        return RunResult(planned=planned,
                         already_done=[f for f in plan.selected if f not in plan.pending])

    def run(self, wanted: list[str], keep_going: bool = False, wait: float = 300.0,
            if_busy: str = "wait", group: str | None = None) -> RunResult:
        """Run every pending (or every selected) task in version order, under the lock."""
        plan = self.plan(wanted)
        if not plan.pending:
            awaiting = [Awaiting(f.version, f.name, None) for f in plan.selected
                        if plan.states.get(f.version) == AWAITING]
            return RunResult(already_done=plan.selected, awaiting=awaiting)
        with self.environment.locked(wait, if_busy, self.reporter.waiting_for_lock,
                                     finished=lambda: self._finished_elsewhere(wanted)) as held:
            if held == BUSY:
                return RunResult(busy_skipped=True)
            if held == FINISHED_ELSEWHERE:
                return RunResult(already_done=plan.selected)
            return self._run_locked(plan, keep_going, group)

    def _finished_elsewhere(self, wanted: list[str]) -> bool:
        """While waiting for the lock: has the holder left nothing for us? (lock-free read)"""
        try:
            return not self.plan(wanted).pending
        finally:
            # End the read's transaction, so the next look sees what the holder committed since
            # (MySQL's repeatable read would keep showing the first snapshot).
            self.environment.backend.rollback()

    def _selected(self, task: Task, group: str | None) -> bool:
        return task.runs_in(self.settings.environment) and group in (None, task.group)

    def _run_locked(self, plan: Plan, keep_going: bool, group: str | None) -> RunResult:
        """Pending is decided again here, under the lock, from records read now."""
        recorder, backend = self.environment.recorder, self.environment.backend
        backend.begin()
        interrupted = recorder.mark_orphans_interrupted(utc_now())
        backend.commit()
        records = recorder.read_records()
        states = {version: record.run_state for version, record in records.items()}
        files = plan.selected
        pending = pending_task_files(files, states, self.settings.environment)
        tasks = self._import(pending, plan.all_files)
        to_run = [f for f in pending if self._selected(tasks[f.version], group)]
        result = RunResult(planned=to_run, already_done=[f for f in files if f not in pending],
                           interrupted_found=interrupted)
        with self._signals_stop_tasks():
            self._run_in_order(to_run, tasks, records, plan.all_files, keep_going, result)
            result.stopped_by = self._stop_signal
        asked_now = {a.version for a in result.awaiting}
        result.awaiting += [Awaiting(f.version, f.name, None) for f in files
                            if states.get(f.version) == AWAITING and f.version not in asked_now]
        self._notify_run(result)
        return result

    def _run_in_order(self, to_run: list[TaskFile], tasks: dict[str, Task],
                      records: dict[str, Record], all_files: list[TaskFile], keep_going: bool,
                      result: RunResult) -> None:
        """Version order; a task waiting on another of this run is retried after it ran."""
        states = {version: record.state for version, record in records.items()}
        by_key = {f.version: f for f in all_files} | {f.name: f for f in all_files}
        left = list(to_run)
        progress = True
        while left and progress:
            progress = False
            for task_file in list(left):
                if self._stop_signal is not None or result.held is not None:
                    return
                task, record = tasks[task_file.version], records.get(task_file.version)
                ready = readiness(task, task_file, states, by_key, {f.version for f in left},
                                  partial(self._condition_context, task_file))
                if ready.later:
                    continue  # depends on a task of this run that has not run yet
                left.remove(task_file)
                if ready.reason:
                    self._wait(task_file, task, ready, result)
                    continue
                if record is not None and record.state == INTERRUPTED and task.on_interrupt == "hold":
                    result.held = task_file
                    self._notify(f"afterparty: {held_message(task_file)}", "Release task held")
                    return
                state = self._run_one(task_file, task, record, result)
                states[task_file.version] = state
                progress = True
                if state == FAILED and not keep_going:
                    return
        for task_file in left:
            reason = f"depends on {', '.join(tasks[task_file.version].depends_on)}"
            self._wait(task_file, tasks[task_file.version], Readiness(reason=reason), result)

    def _wait(self, task_file: TaskFile, task: Task, ready: Readiness, result: RunResult) -> None:
        assert ready.reason is not None
        result.waiting[task_file.version] = ready.reason
        self.reporter.task_waiting(task_file, ready.reason)
        backend = self.environment.backend
        backend.begin()
        self.environment.recorder.record_waiting(task_file.version, task_file.name,
                                                 task.description, ready.reason)
        backend.commit()

    def _run_one(self, task_file: TaskFile, task: Task, record: Record | None,
                 result: RunResult) -> str:
        if task.manual:
            return self._ask_a_person(task_file, task, record, result)
        attempt = record.attempts if record else 0
        for try_number in range(task.retries + 1):
            attempt += 1
            outcome = self.run_task(task_file, task, attempt)
            result.outcomes.append(outcome)
            if outcome.state != FAILED or try_number == task.retries:
                break
            delay = task.retry_delay * (2 ** try_number)
            self.reporter.task_retrying(task_file, delay)
            time.sleep(delay)
        if outcome.state == FAILED:
            self._notify(f"afterparty: release task {task_file.label} failed in "
                         f"{self.settings.environment}: {error_summary(outcome.error)}",
                         "Release task failed")
        return outcome.state

    def _ask_a_person(self, task_file: TaskFile, task: Task, record: Record | None,
                      result: RunResult) -> str:
        """Record a human step as awaiting, tell people, and ask at a terminal if there is one."""
        recorder, backend = self.environment.recorder, self.environment.backend
        ctx = self._context(task_file, (record.attempts if record else 0) + 1,
                            self._logger(task_file))
        instructions = task.instructions(ctx)
        backend.begin()
        attempt_id = recorder.record_start(task_file.version, task_file.name, task.description,
                                           file_checksum(task_file.path),
                                           self.environment.origin(), utc_now())
        recorder.record_finish(attempt_id, task_file.version, AWAITING, utc_now(), 0.0, None,
                               instructions)
        backend.commit()
        whom = task.owner or "a person"
        self._notify(f"Release step for {whom} in {self.settings.environment}: {task.description}\n\n"
                     f"{instructions}\n\nWhen it is done: afterparty confirm {task_file.version}",
                     f"Release step awaits {whom}")
        if self.reporter.manual_step(task_file, instructions):
            from afterparty.decisions import record_decision

            record_decision(self.environment, task_file.version, task_file.name, "confirm",
                            SUCCEEDED, "confirmed at the prompt")
            return SUCCEEDED
        result.awaiting.append(Awaiting(task_file.version, task_file.name, task.owner))
        return AWAITING

    def _import(self, task_files: list[TaskFile], all_files: list[TaskFile]) -> dict[str, Task]:
        """Import task files and check their dependencies; every problem before anything runs."""
        root = self.settings.project_root
        if root not in sys.path:
            sys.path.insert(0, root)
        tasks = load_tasks(task_files)
        problems = dependency_problems(task_files, tasks, all_files)
        if problems:
            raise TaskFileError(problems)
        return tasks

    def _logger(self, task_file: TaskFile) -> logging.Logger:
        from afterparty.capture import OutputCapture

        return OutputCapture(f"afterparty.task.{task_file.label}", self.reporter.task_output).logger

    def _context(self, task_file: TaskFile, attempt: int, log: logging.Logger) -> Context:
        from afterparty.context import Context, TaskConnection

        environment = self.environment
        return Context(
            version=task_file.version, name=task_file.name,
            env=self.settings.environment, release=environment.origin().release_id,
            attempt=attempt,
            idempotency_key=_idempotency_key(environment.recorder.environment_id(), task_file.version),
            db=TaskConnection(environment.backend.connection), log=log,
            notify_urls=self.settings.notify, open_session=environment.backend.orm_session,
        )

    def _condition_context(self, task_file: TaskFile) -> Context:
        """The ``ctx`` a ``when`` condition is called with (made only when there is one)."""
        return self._context(task_file, 0, self._logger(task_file))

    def run_task(self, task_file: TaskFile, task: Task, attempt: int,
                 body: TaskBody | None = None, action: str = "run",
                 success_state: str = SUCCEEDED, failure_state: str | None = None) -> TaskOutcome:
        """One attempt: record it running (committed), run the body, record how it ended."""
        from afterparty.capture import OutputCapture

        environment = self.environment
        recorder, backend = environment.recorder, environment.backend
        backend.begin()
        attempt_id = recorder.record_start(
            task_file.version, task_file.name, task.description, file_checksum(task_file.path),
            environment.origin(), utc_now(), action=action, recurring=task.recurring,
        )
        backend.commit()
        self.reporter.task_started(task_file, task.description)
        capture = OutputCapture(f"afterparty.task.{task_file.label}", self.reporter.task_output)
        ctx = self._context(task_file, attempt, capture.logger)
        started = time.monotonic()
        state: str
        error: str | None
        backend.begin()
        try:
            with capture, self._task_body(task.timeout):
                (body or task.body)(ctx)
        except (StoppedBySignal, KeyboardInterrupt) as stop:
            backend.rollback()
            signum = stop.signum if isinstance(stop, StoppedBySignal) else signal.SIGINT
            self._finish(attempt_id, task_file, INTERRUPTED, started,
                         f"stopped by {signal.Signals(signum).name}", capture.text, failure_state)
            raise
        except TaskTimeout:
            backend.rollback()
            state, error = FAILED, f"timed out after {task.timeout:g} s"
        except Exception as exc:
            backend.rollback()
            state, error = FAILED, _task_traceback(exc, task_file)
        else:
            state, error = self._commit_success(attempt_id, task_file, started, capture.text,
                                                success_state)
        if state == FAILED:
            self._finish(attempt_id, task_file, FAILED, started, error, capture.text, failure_state)
        outcome = TaskOutcome(task_file.version, task_file.name,
                              success_state if state == SUCCEEDED else state,
                              time.monotonic() - started, error)
        self.reporter.task_finished(outcome)
        return outcome

    def rollback(self, wanted: str, record_only: bool = False, wait: float = 300.0) -> TaskOutcome:
        """Run a task's undo step and mark it reverted (pending again); or only record that."""
        files = scan_tasks_dir(self.settings.tasks_dir)
        with self.environment.locked(wait, "wait", self.reporter.waiting_for_lock):
            records = self.environment.recorder.read_records()
            found = find_tasks(files, records, [wanted])[0]
            version, task_file, record = found.version, found.task_file, records.get(found.version)
            if record is None:
                raise UsageError(f"{wanted!r} has never run here: there is nothing to roll back")
            if record.state not in (SUCCEEDED, FAILED, INTERRUPTED, AWAITING):
                raise UsageError(f"task {version} is {record.state}: there is nothing to roll back")
            if record_only:
                from afterparty.decisions import record_decision

                record_decision(self.environment, version, record.name, "rollback --record-only",
                                REVERTED)
                return TaskOutcome(version, record.name, REVERTED, 0.0)
            if task_file is None:
                raise UsageError(f"the file of task {version} is gone: use --record-only")
            task = self._import([task_file], files)[version]
            if task.undo_body is None:
                raise UsageError(
                    f"task {task_file.label} has no undo step (decorate one with @run.undo); "
                    "use --record-only to mark it reverted without running anything"
                )
            with self._signals_stop_tasks():
                return self.run_task(task_file, task, record.attempts + 1, body=task.undo_body,
                                     action="rollback", success_state=REVERTED,
                                     failure_state=record.state)

    def _commit_success(self, attempt_id: int, task_file: TaskFile, started: float,
                        output: str, success_state: str) -> tuple[str, str | None]:
        """Write the success record in the task's own transaction and commit both together."""
        from afterparty.errors import DatabaseError

        try:
            self.environment.recorder.record_finish(
                attempt_id, task_file.version, SUCCEEDED, utc_now(),
                time.monotonic() - started, None, output, task_state=success_state,
            )
            self.environment.backend.commit()
        except DatabaseError as exc:
            self.environment.backend.rollback()
            return FAILED, f"the task's work could not be committed: {exc}"
        return SUCCEEDED, None

    def _finish(self, attempt_id: int, task_file: TaskFile, state: str, started: float,
                error: str | None, output: str, task_state: str | None = None) -> None:
        backend = self.environment.backend
        backend.begin()
        self.environment.recorder.record_finish(
            attempt_id, task_file.version, state, utc_now(), time.monotonic() - started,
            error, output, task_state=task_state,
        )
        backend.commit()

    def _notify(self, message: str, title: str) -> None:
        if not self.settings.notify:
            return
        import logging

        from afterparty.notify import send_notification

        send_notification(self.settings.notify, message, title, logging.getLogger("afterparty"))

    def _notify_run(self, result: RunResult) -> None:
        if not (self.settings.notify_summary and result.did_something):
            return
        lines = [f"{o.version} {o.name}: {o.state}" for o in result.outcomes]
        lines += [f"{a.version} {a.name}: awaits confirmation" for a in result.awaiting]
        lines += [f"{v}: waiting ({reason})" for v, reason in result.waiting.items()]
        self._notify(f"afterparty run in {self.settings.environment}:\n" + "\n".join(lines),
                     "Release tasks ran")

    @contextmanager
    def _task_body(self, timeout: float | None) -> Iterator[None]:
        self._in_task_body = True
        previous = None
        if timeout:
            def on_alarm(signum: int, frame: FrameType | None) -> None:
                raise TaskTimeout()

            previous = signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            yield
        finally:
            self._in_task_body = False
            if timeout:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)

    @contextmanager
    def _signals_stop_tasks(self) -> Iterator[None]:
        """SIGTERM stops the task body at once; between tasks it stops the run cleanly."""

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self._stop_signal = signum
            if self._in_task_body:
                raise StoppedBySignal(signum)

        previous = signal.signal(signal.SIGTERM, on_signal)
        previous_int = signal.signal(signal.SIGINT, on_signal)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)


def _task_traceback(exc: BaseException, task_file: TaskFile) -> str:
    """The traceback from the task file's frames on: the runner's own frames are noise."""
    import os
    import traceback

    tb = exc.__traceback__
    target = os.path.abspath(task_file.path)
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) != target:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))


def _idempotency_key(environment_id: str, version: str) -> str:
    """Stable for every attempt of one task in one environment, different everywhere else."""
    import hashlib

    return hashlib.sha256(f"{environment_id}:{version}".encode()).hexdigest()[:32]


def held_message(task_file: TaskFile) -> str:
    return (
        f"task {task_file.label} was interrupted and is marked on_interrupt=\"hold\": check what "
        f"it did, then choose one: `afterparty resolve {task_file.version} --retry` (run it again), "
        f"`--done` (record it as done) or `--skip`"
    )
