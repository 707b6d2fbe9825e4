"""What ``run``, ``status`` and ``show`` report, as typed values: the ``--json`` shapes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from afterparty.executor import Awaiting, RunResult, TaskOutcome
    from afterparty.recorder import Attempt
    from afterparty.task_status import TaskStatus


@dataclass(frozen=True)
class TaskRef:
    """A task named by its version and name."""

    version: str
    name: str


@dataclass
class RunReport:
    """What one ``run`` did (``afterparty run --json``).

    ``result`` is ``ran``, ``nothing_to_do``, ``dry_run`` or ``busy_skipped``; ``tasks`` the
    attempts made, in order; ``pending`` the selected tasks this run did not run.
    """

    result: str
    exit_code: int
    environment: str
    tasks: list[TaskOutcome]
    pending: list[TaskRef]
    held: str | None
    interrupted_found: list[str]
    waiting: dict[str, str] = field(default_factory=dict)
    awaiting: list[Awaiting] = field(default_factory=list)

    @classmethod
    def of(cls, result: RunResult, environment: str, dry_run: bool = False) -> RunReport:
        if result.busy_skipped:
            outcome = "busy_skipped"
        elif dry_run:
            outcome = "dry_run"
        elif not result.planned:
            outcome = "nothing_to_do"
        else:
            outcome = "ran"
        ran = {o.version for o in result.outcomes}
        return cls(
            result=outcome, exit_code=result.exit_code, environment=environment,
            tasks=list(result.outcomes),
            pending=[TaskRef(f.version, f.name) for f in result.planned if f.version not in ran],
            held=result.held.version if result.held else None,
            interrupted_found=list(result.interrupted_found),
            waiting=dict(result.waiting), awaiting=list(result.awaiting),
        )

    def as_dict(self) -> dict[str, Any]:
        report = asdict(self)
        for task in report["tasks"]:
            task["duration"] = round(task["duration"], 4)
        return report


@dataclass
class StatusReport:
    """Every task file and record of an environment (``afterparty status --json``)."""

    environment: str
    database: str
    tasks: list[TaskStatus]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TaskHistory:
    """One task and every attempt and decision in its history (``afterparty show --json``)."""

    task: TaskStatus
    attempts: list[Attempt]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
