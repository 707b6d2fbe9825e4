"""One task run to its end: its attempts (one, or more as its ``retries`` allow), or its human
step asked; the executor and a background worker both run a task through it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from afterparty.errors import StoppedBySignal
from afterparty.results import Awaiting, RunResult, TaskOutcome
from afterparty.states import Action, State, state_of

if TYPE_CHECKING:
    from afterparty.attempt import AttemptRunner
    from afterparty.definition import Task
    from afterparty.loader import TaskFile
    from afterparty.notices import Notices
    from afterparty.records import Record


def run_task(runner: AttemptRunner, notices: Notices, task_file: TaskFile, task: Task,
             record: Record | None, result: RunResult) -> State:
    """Run one task found as ``record`` says: its attempts, each added to ``result``; a human
    step is recorded awaiting and asked for. Returns the state it ends in."""
    attempt = record.attempts if record else 0
    state = state_of(record.state if record else None)
    if task.manual:
        return _ask_a_person(runner, notices, task_file, task, attempt + 1, state, result)
    outcome: TaskOutcome | None = None
    for try_number in range(task.retries + 1):
        attempt += 1
        with stop_note(result, f"{task_file.label} was stopped: its work was rolled back and "
                               "it was recorded interrupted"):
            outcome = runner.run(task_file, task, attempt, state)
        state = outcome.state
        result.outcomes.append(outcome)
        if outcome.state is not State.FAILED or try_number == task.retries:
            break
        delay = task.retry_delay * (2 ** try_number)
        runner.reporter.task_retrying(task_file, delay)
        with stop_note(result, f"stopped while waiting to try {task_file.label} again: "
                               "it stays failed"):
            runner.interruptions.sleep(delay)
    assert outcome is not None
    if outcome.state is State.FAILED:
        notices.task_failed(task_file, outcome.error)
    return outcome.state


def _ask_a_person(runner: AttemptRunner, notices: Notices, task_file: TaskFile, task: Task,
                  attempt: int, before: State, result: RunResult) -> State:
    """Record a human step as awaiting, tell people, and ask at a terminal if there is one."""
    instructions = runner.record_awaiting(task_file, task, attempt, before)
    if isinstance(instructions, TaskOutcome):  # its body failed to give instructions
        result.outcomes.append(instructions)
        return instructions.state
    notices.step_awaits(task_file, task, instructions)
    session = runner.session
    with stop_note(result, f"stopped at the question: {task_file.label} still awaits "
                           f"confirmation ({session.settings.command} confirm {task_file.version})"), \
            runner.interruptions.at_once():
        confirmed = runner.reporter.manual_step(task_file, instructions)
    if confirmed:
        from afterparty.decisions import record_decision

        record_decision(session, task_file.version, task_file.name, Action.CONFIRM,
                        State.AWAITING, "confirmed at the prompt")
        # Counted as done in the summary (not "still pending").
        result.outcomes.append(TaskOutcome(task_file.version, task_file.name, State.SUCCEEDED, 0.0))
        return State.SUCCEEDED
    result.awaiting.append(Awaiting(task_file.version, task_file.name, task.owner))
    return State.AWAITING


@contextmanager
def stop_note(result: RunResult, note: str) -> Iterator[None]:
    """Say what a signal stopped, for the summary; the signal still ends the run."""
    try:
        yield
    except StoppedBySignal:
        result.stop_note = note
        raise
