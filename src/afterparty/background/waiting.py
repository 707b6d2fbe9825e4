"""``run --wait-background``: watching the background tasks a run sent until each has ended, and
noticing a worker that died by its free lease."""

from __future__ import annotations

from typing import TYPE_CHECKING

from afterparty.errors import StoppedBySignal
from afterparty.lease import lease_if_free
from afterparty.results import Background
from afterparty.session import Session, utc_now
from afterparty.states import Actor, State, state_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from afterparty.records import Record


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
            # Not running any more (its worker ended it between our look and the lease): the
            # compare-and-set finds that, and the worker's outcome stands.
            marked = session.recorder.mark_orphans_interrupted(utc_now(), [version], lease.fence,
                                                               Actor.RUNNER)
    finally:
        lease.release()
    return bool(marked)


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
                        record = session.recorder.read_records().get(task.version)
                        state = state_of(record.state if record else None)
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
    """As if they had run inline: 1 when one failed, 5 when one is held, else 0 (a task a
    person paused or cancelled is no failure of the deploy)."""
    if any(t.state in (State.FAILED, State.INTERRUPTED) and not t.hold for t in tasks):
        return 1
    return 5 if any(t.state is State.INTERRUPTED for t in tasks) else 0
