"""What a run did, as values (outcomes, waits, human steps), and what it tells as it goes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from afterparty.states import State

if TYPE_CHECKING:
    from afterparty.loader import TaskFile


class RunReporter(Protocol):
    """What the runner tells whoever drives it (the command line prints it)."""

    def waiting_for_lock(self, holder: str | None) -> None: ...
    def task_started(self, task_file: TaskFile, description: str) -> None: ...
    def task_output(self, text: str) -> None: ...
    def task_finished(self, outcome: TaskOutcome) -> None: ...
    def task_waiting(self, task_file: TaskFile, reason: str) -> None: ...
    def task_retrying(self, task_file: TaskFile, delay: float) -> None: ...
    def manual_step(self, task_file: TaskFile, instructions: str) -> bool: ...


def tell_planned(reporter: RunReporter, count: int) -> None:
    """Tell a reporter how many tasks the run will try, when it wants to know (``[3/12]``):
    an optional method, so that reporters written before it keep working."""
    planned = getattr(reporter, "run_planned", None)
    if planned is not None:
        planned(count)


class SilentReporter:
    """Tells nothing: output is kept with the attempt (tests, the Python API)."""

    def waiting_for_lock(self, holder: str | None) -> None: ...
    def task_started(self, task_file: TaskFile, description: str) -> None: ...
    def task_output(self, text: str) -> None: ...
    def task_finished(self, outcome: TaskOutcome) -> None: ...
    def task_waiting(self, task_file: TaskFile, reason: str) -> None: ...
    def task_retrying(self, task_file: TaskFile, delay: float) -> None: ...

    def manual_step(self, task_file: TaskFile, instructions: str) -> bool:
        return False


@dataclass
class TaskOutcome:
    """How one task's attempt ended."""

    version: str
    name: str
    state: State
    duration: float
    error: str | None = None


@dataclass
class Awaiting:
    """A human step waiting for ``afterparty confirm``."""

    version: str
    name: str
    owner: str | None


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


@dataclass
class RunResult:
    """What one ``run`` did; ``exit_code`` is what the command line ends with."""

    planned: list[TaskFile] = field(default_factory=list)
    outcomes: list[TaskOutcome] = field(default_factory=list)
    waiting: dict[str, str] = field(default_factory=dict)
    awaiting: list[Awaiting] = field(default_factory=list)
    busy_skipped: bool = False
    interrupted_found: list[str] = field(default_factory=list)
    stopped_by: int | None = None
    #: What the signal stopped, in words, when one did.
    stop_note: str | None = None
    held: TaskFile | None = None
    #: Background tasks sent to a worker, or found running on one.
    background: list[Background] = field(default_factory=list)
    #: Held notices this run sent to a notification service, and those none took (each as
    #: "<version>: <what went wrong>"), which the next run or tick tries again.
    notices_sent: int = 0
    notices_undelivered: list[str] = field(default_factory=list)
    #: Releases a deploy of an older one rolled back: release -> its tasks whose files are gone.
    rolled_back: dict[str, list[str]] = field(default_factory=dict)

    def absorb(self, later: RunResult) -> None:
        """Take in what a later pass of the same command did (``run --wait-background`` runs
        what waited on background tasks once they end): its attempts and background tasks, and
        what still waits; a task sent to a worker again replaces its earlier entry."""
        self.outcomes += later.outcomes
        resent = {t.version for t in later.background}
        self.background = [t for t in self.background if t.version not in resent] + later.background
        for version in [v for v in self.waiting if v in later.planned_versions]:
            del self.waiting[version]
        self.waiting.update(later.waiting)
        self.awaiting += [a for a in later.awaiting if a not in self.awaiting]
        self.held = later.held or self.held
        self.notices_sent += later.notices_sent
        self.notices_undelivered += later.notices_undelivered

    @property
    def planned_versions(self) -> set[str]:
        return {task_file.version for task_file in self.planned}

    @property
    def final_outcomes(self) -> list[TaskOutcome]:
        """The last attempt of each task this run tried (retries make several)."""
        return list({o.version: o for o in self.outcomes}.values())

    @property
    def failed(self) -> list[TaskOutcome]:
        held = self.held.version if self.held is not None else None
        return [o for o in self.final_outcomes
                if o.state in (State.FAILED, State.INTERRUPTED) and o.version != held]

    @property
    def succeeded(self) -> list[TaskOutcome]:
        return [o for o in self.final_outcomes if o.state is State.SUCCEEDED]

    @property
    def did_something(self) -> bool:
        return bool(self.outcomes or self.held or self.background)

    @property
    def exit_code(self) -> int:
        if self.stopped_by is not None:
            return 128 + self.stopped_by
        if self.failed:
            return 1
        return 5 if self.held is not None else 0


def held_message(task_file: TaskFile, command: str = "afterparty") -> str:
    """What a person must decide about an interrupted task marked ``on_interrupt="hold"``;
    ``command`` is how the user runs afterparty (``flask afterparty``)."""
    return (
        f"task {task_file.label} was interrupted and is marked on_interrupt=\"hold\": check what "
        f"it did, then choose one: `{command} resolve {task_file.version} --retry` (run it again), "
        f"`--done` (record it as done) or `--skip`"
    )
