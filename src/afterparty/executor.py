"""Plans which tasks are pending and runs them one at a time, recording every attempt."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Protocol

from afterparty.definition import Task
from afterparty.environment import Environment, utc_now
from afterparty.errors import StoppedBySignal, UnknownTaskError
from afterparty.loader import TaskFile, file_checksum, load_tasks, scan_tasks_dir
from afterparty.recorder import DONE_STATES, FAILED, INTERRUPTED, SUCCEEDED, Record


class RunReporter(Protocol):
    """What the runner tells whoever drives it (the CLI prints it)."""

    def waiting_for_lock(self, holder: str | None) -> None: ...
    def task_started(self, task_file: TaskFile, description: str) -> None: ...
    def task_output(self, text: str) -> None: ...
    def task_finished(self, outcome: TaskOutcome) -> None: ...


@dataclass
class TaskOutcome:
    """How one task's attempt ended."""

    version: str
    name: str
    state: str
    duration: float
    error: str | None = None


@dataclass
class RunResult:
    """What one ``run`` did; ``exit_code`` is what the command line ends with."""

    planned: list[TaskFile] = field(default_factory=list)
    outcomes: list[TaskOutcome] = field(default_factory=list)
    already_done: list[TaskFile] = field(default_factory=list)
    busy_skipped: bool = False
    interrupted_found: list[str] = field(default_factory=list)
    stopped_by: int | None = None
    held: TaskFile | None = None

    @property
    def failed(self) -> list[TaskOutcome]:
        return [o for o in self.outcomes if o.state != SUCCEEDED]

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


def pending_task_files(files: list[TaskFile], states: dict[str, str]) -> list[TaskFile]:
    """Task files whose record is missing or not done, in version order."""
    return [f for f in files if states.get(f.version) not in DONE_STATES]


class Executor:
    """Runs pending tasks of one environment."""

    def __init__(self, environment: Environment, reporter: RunReporter) -> None:
        self.environment = environment
        self.reporter = reporter
        self._in_task_body = False
        self._stop_signal: int | None = None

    def plan(self, wanted: list[str]) -> tuple[list[TaskFile], list[TaskFile]]:
        """Lock-free: the selected task files and those of them that look pending."""
        files = select_task_files(scan_tasks_dir(self.environment.settings.tasks_dir), wanted)
        states = self.environment.recorder.read_states()
        return files, pending_task_files(files, states)

    def dry_run(self, wanted: list[str]) -> RunResult:
        """What ``run`` would do now, checking the task files; changes nothing."""
        files, pending = self.plan(wanted)
        self._import(pending)
        return RunResult(planned=pending, already_done=[f for f in files if f not in pending])

    def run(self, wanted: list[str], keep_going: bool = False, wait: float = 300.0,
            if_busy: str = "wait") -> RunResult:
        """Run every pending (or every selected) task in version order, under the lock."""
        files, pending = self.plan(wanted)
        if not pending:
            return RunResult(already_done=files)
        with self.environment.locked(wait, if_busy, self.reporter.waiting_for_lock) as held:
            if not held:
                return RunResult(busy_skipped=True)
            return self._run_locked(files, keep_going)

    def _run_locked(self, files: list[TaskFile], keep_going: bool) -> RunResult:
        recorder = self.environment.recorder
        backend = self.environment.backend
        backend.begin()
        interrupted = recorder.mark_orphans_interrupted(utc_now())
        backend.commit()
        records = recorder.read_records()
        states = {version: record.state for version, record in records.items()}
        pending = pending_task_files(files, states)
        result = RunResult(
            planned=pending, already_done=[f for f in files if f not in pending],
            interrupted_found=interrupted,
        )
        tasks = self._import(pending)
        with self._signals_stop_tasks():
            for task_file in pending:
                if self._stop_signal is not None:
                    break
                record = records.get(task_file.version)
                task = tasks[task_file.version]
                if record is not None and record.state == INTERRUPTED and task.on_interrupt == "hold":
                    result.held = task_file
                    break
                outcome = self.run_task(task_file, task, record)
                result.outcomes.append(outcome)
                if outcome.state == FAILED and not keep_going:
                    break
            result.stopped_by = self._stop_signal
        return result

    def _import(self, task_files: list[TaskFile]) -> dict[str, Task]:
        root = self.environment.settings.project_root
        if root not in sys.path:
            sys.path.insert(0, root)
        return load_tasks(task_files)

    def run_task(self, task_file: TaskFile, task: Task, record: Record | None) -> TaskOutcome:
        """One attempt: record it running (committed), run the body, record how it ended."""
        from afterparty.capture import OutputCapture
        from afterparty.context import Context, TaskConnection

        environment = self.environment
        recorder, backend = environment.recorder, environment.backend
        backend.begin()
        attempt_id = recorder.record_start(
            task_file.version, task_file.name, task.description, file_checksum(task_file.path),
            environment.origin(), utc_now(),
        )
        backend.commit()
        self.reporter.task_started(task_file, task.description)
        capture = OutputCapture(f"afterparty.task.{task_file.label}", self.reporter.task_output)
        ctx = Context(
            version=task_file.version, name=task_file.name,
            env=environment.settings.environment, release=environment.origin().release_id,
            attempt=(record.attempts if record else 0) + 1,
            idempotency_key=_idempotency_key(recorder.environment_id(), task_file.version),
            db=TaskConnection(backend.connection), log=capture.logger,
            notify_urls=environment.settings.notify,
        )
        started = time.monotonic()
        state, error = SUCCEEDED, None
        backend.begin()
        try:
            with capture, self._task_body():
                task(ctx)
        except (StoppedBySignal, KeyboardInterrupt) as stop:
            backend.rollback()
            signum = stop.signum if isinstance(stop, StoppedBySignal) else signal.SIGINT
            self._finish(attempt_id, task_file, INTERRUPTED, started,
                         f"stopped by {signal.Signals(signum).name}", capture.text)
            raise
        except Exception as exc:
            backend.rollback()
            state, error = FAILED, _task_traceback(exc, task_file)
        else:
            state, error = self._commit_success(attempt_id, task_file, started, capture.text)
        if state == FAILED:
            self._finish(attempt_id, task_file, FAILED, started, error, capture.text)
        outcome = TaskOutcome(task_file.version, task_file.name, state,
                              time.monotonic() - started, error)
        self.reporter.task_finished(outcome)
        return outcome

    def _commit_success(self, attempt_id: int, task_file: TaskFile, started: float,
                        output: str) -> tuple[str, str | None]:
        """Write the success record in the task's own transaction and commit both together."""
        from afterparty.errors import DatabaseError

        try:
            self.environment.recorder.record_finish(
                attempt_id, task_file.version, SUCCEEDED, utc_now(),
                time.monotonic() - started, None, output,
            )
            self.environment.backend.commit()
        except DatabaseError as exc:
            self.environment.backend.rollback()
            return FAILED, f"the task's work could not be committed: {exc}"
        return SUCCEEDED, None

    def _finish(self, attempt_id: int, task_file: TaskFile, state: str, started: float,
                error: str | None, output: str) -> None:
        backend = self.environment.backend
        backend.begin()
        self.environment.recorder.record_finish(
            attempt_id, task_file.version, state, utc_now(), time.monotonic() - started,
            error, output,
        )
        backend.commit()

    @contextmanager
    def _task_body(self) -> Iterator[None]:
        self._in_task_body = True
        try:
            yield
        finally:
            self._in_task_body = False

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

