"""Run one release task in a test, against a database you choose, and read back what happened."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from afterparty.config import Settings
from afterparty.graph import load_checked
from afterparty.loader import TASK_FILE_NAME, TaskFile
from afterparty.records import Attempt
from afterparty.results import SilentReporter
from afterparty.session import Session
from afterparty.states import State, state_of


@dataclass
class TaskRun:
    """What one test run of a task did: its outcome, output, and the task's whole history."""

    state: str
    error: str | None
    output: str
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.state == State.SUCCEEDED.value


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
    task_file = TaskFile(match.group(1), match.group(2), os.path.dirname(path))
    settings = Settings(
        database_url=database_url, tasks_dir=os.path.dirname(path), environment=env,
        table_prefix=table_prefix, project_root=os.getcwd(), release=release,
        notify=list(notify or []),
    )
    session = Session(settings, connect_timeout=5)
    try:
        with session.locked():
            from afterparty.attempt import AttemptRunner

            task = load_checked([task_file], [task_file], settings.project_root)[task_file.version]
            previous = session.recorder.read_records().get(task_file.version)
            outcome = AttemptRunner(session, SilentReporter()).run(
                task_file, task, (previous.attempts if previous else 0) + 1,
                state_of(previous.state if previous else None))
            if outcome.state is State.SUCCEEDED:  # its held notices go out, as after a run
                from afterparty.outbox import Outbox

                Outbox(session).send_due(task_file.version)
            attempts = session.recorder.read_attempts(task_file.version)
    finally:
        session.close()
    return TaskRun(outcome.state.value, outcome.error, attempts[-1].output or "", attempts)
