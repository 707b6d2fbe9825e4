"""Run one release task in a test, against a database you choose, and read back what happened."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from afterparty.config import Settings
from afterparty.environment import Environment
from afterparty.executor import Executor, TaskOutcome
from afterparty.loader import TASK_FILE_NAME, TaskFile, load_tasks
from afterparty.recorder import Attempt


@dataclass
class TaskRun:
    """What one test run of a task did: its outcome, output, and the task's whole history."""

    state: str
    error: str | None
    output: str
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.state == "succeeded"


class _Silent:
    """A reporter for tests: the output is kept in the attempt, not printed."""

    def waiting_for_lock(self, holder: str | None) -> None: ...
    def task_started(self, task_file: Any, description: str) -> None: ...
    def task_output(self, text: str) -> None: ...
    def task_finished(self, outcome: Any) -> None: ...
    def task_waiting(self, task_file: Any, reason: str) -> None: ...
    def task_retrying(self, task_file: Any, delay: float) -> None: ...
    def manual_step(self, task_file: Any, instructions: str) -> bool:
        return False


def run_task(path: str | os.PathLike[str], *, database_url: str, env: str = "test",
             release: str | None = "test", notify: list[str] | None = None,
             table_prefix: str = "afterparty_") -> TaskRun:
    """Run the body of one task file once (whatever its record says) and report the attempt.

    The attempt is recorded in ``database_url`` exactly as ``afterparty run`` records it,
    ``ctx.db`` included, so a test can also check what the task wrote there.
    """
    path = os.path.abspath(os.fspath(path))
    match = TASK_FILE_NAME.match(os.path.basename(path))
    if match is None:
        raise ValueError(f"{path} is not named <14-digit version>_<name>.py")
    task_file = TaskFile(match.group(1), match.group(2), path)
    settings = Settings(
        database_url=database_url, tasks_dir=os.path.dirname(path), environment=env,
        table_prefix=table_prefix, project_root=os.getcwd(), release=release,
        notify=list(notify or []),
    )
    environment = Environment(settings, connect_timeout=5)
    try:
        with environment.locked():
            task = load_tasks([task_file])[task_file.version]
            records = environment.recorder.read_records()
            previous = records.get(task_file.version)
            executor = Executor(environment, _Silent())
            outcome: TaskOutcome = executor.run_task(
                task_file, task, (previous.attempts if previous else 0) + 1)
            attempts = environment.recorder.read_attempts(task_file.version)
    finally:
        environment.close()
    return TaskRun(outcome.state, outcome.error, attempts[-1].output or "", attempts)
