"""The deploy gate (``afterparty verify``): is everything in this environment settled?

It reads the same rows as ``status`` (importing only a task file whose options are not
literals, as ``run`` does), so a CI step or a readiness probe can call it as often as it likes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from afterparty.states import State

if TYPE_CHECKING:
    from collections.abc import Sequence

    from afterparty.releases import HeldNotice, RolledBack
    from afterparty.report import TaskStatus

# Not 5 (`run`: a task waits for a human): verify also fails for pending and failed tasks, and a
# deploy script that runs both must be able to tell "run stopped for a person" from "not settled".
GATE_EXIT_CODE = 6
SCHEMA = 1
NOT_HERE = "not for this environment"


@dataclass(frozen=True)
class Finding:
    """One task that keeps the environment from being settled, and what to do about it."""

    version: str
    name: str
    problem: str  # pending, queued, running, failed, interrupted, awaiting, modified
    detail: str
    next_step: str


@dataclass
class GateReport:
    """What ``verify`` found: the problems that fail the gate, and those the options allow."""

    environment: str
    checked: int
    problems: list[Finding] = field(default_factory=list)
    allowed: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else GATE_EXIT_CODE

    def as_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "environment": self.environment, "ok": self.ok,
                "exit_code": self.exit_code, "checked": self.checked,
                "problems": [asdict(f) for f in self.problems],
                "allowed": [asdict(f) for f in self.allowed]}

    def lines(self) -> list[str]:
        """What ``verify`` prints: one line per finding, then the verdict."""
        out = [f"{f.version} {f.name}: {f.problem}{' - ' + f.detail if f.detail else ''}"
               f" ({f.next_step})" for f in self.problems]
        out += [f"{f.version} {f.name}: {f.problem}, allowed{' - ' + f.detail if f.detail else ''}"
                for f in self.allowed]
        if self.ok:
            out.append(f"verify: {self.environment} is settled ({self.checked} task(s) checked)")
        else:
            out.append(f"verify: {len(self.problems)} task(s) need attention in "
                       f"{self.environment} (exit {GATE_EXIT_CODE})")
        return out


def check_environment(rows: list[TaskStatus], environment: str, *, allow_pending: bool = False,
                      allow_awaiting: bool = False, notices: Sequence[HeldNotice] = (),
                      rolled_back: Sequence[RolledBack] = ()) -> GateReport:
    """Sort every status row into settled, a problem, or a problem the team allows; with the
    notices still held and the releases a deploy rolled back (afterparty.releases)."""
    report = GateReport(environment, len(rows))
    names = {row.version: row.name for row in rows}
    findings = [_finding(row) for row in rows]
    findings += [_rolled_back(release, version, names.get(version) or name)
                 for release in rolled_back for version, name in release.tasks]
    findings += [_held(held, names.get(held.notice.version, "")) for held in notices]
    for finding in findings:
        if finding is None:
            continue
        tolerated = (finding.problem == State.PENDING and allow_pending) or (
            finding.problem == State.AWAITING and allow_awaiting)
        (report.allowed if tolerated else report.problems).append(finding)
    return report


def _finding(row: TaskStatus) -> Finding | None:
    state = State(row.state)
    version = row.version
    if state.is_done:
        if row.modified:
            return Finding(version, row.name, "modified", "its file changed after it ran",
                           f"restore the file, or `afterparty forget {version}` to run it again")
        return None
    if state is State.PENDING and row.reason == NOT_HERE:
        return None
    if row.file_missing and state in (State.PENDING, State.REVERTED):
        return None  # a record of a task whose file is gone: nothing will ever run it
    error_lines = (row.last_error or "").strip().splitlines()
    detail = row.reason or (error_lines[-1] if error_lines else "")
    if state is State.FAILED:
        return Finding(version, row.name, state.value, detail,
                       f"`afterparty show {version}`; fix it and run again, or skip it")
    if state is State.INTERRUPTED:
        return Finding(version, row.name, state.value, detail or "its runner stopped mid-task",
                       f"`afterparty resolve {version} --retry|--done|--skip`, or run again")
    if state is State.AWAITING:
        return Finding(version, row.name, state.value, "a person's step",
                       f"`afterparty confirm {version}` once it is done")
    if state is State.PAUSED:
        return Finding(version, row.name, state.value, "paused at a person's request",
                       f"`afterparty resume {version}` (it goes on from its checkpoint), or "
                       f"`afterparty cancel {version}`")
    if state is State.CANCELLED:
        return Finding(version, row.name, state.value, "cancelled at a person's request",
                       f"`afterparty resolve {version} --retry|--done|--skip`")
    if state is State.RUNNING:
        return Finding(version, row.name, state.value, row.reason or "a runner is running it now",
                       "wait for the run to end; the next run finds a dead runner's task")
    if state is State.QUEUED:
        return Finding(version, row.name, state.value, "sent to a background worker",
                       "wait for a worker to run it (`afterparty run --wait-background`)")
    if state is State.PENDING and (row.reason or "").startswith("waiting: "):
        return Finding(version, row.name, state.value, detail,
                       "`afterparty tick` (or the next run) runs it once it is due")
    return Finding(version, row.name, state.value, detail, "`afterparty run`")


def _rolled_back(release: RolledBack, version: str, name: str) -> Finding:
    return Finding(version, name, "rolled back",
                   f"it ran in release {release.release}, deployed here after the release deployed "
                   "now, which lacks its file",
                   f"`afterparty rollback --release {release.release}` runs the undo steps of that "
                   "release (see --dry-run)")


def _held(held: HeldNotice, name: str) -> Finding:
    """A notice still held: not delivered yet is a problem; one waiting for its time is
    pending (``--allow-pending`` allows it)."""
    notice = held.notice
    if held.undelivered:
        return Finding(notice.version, name, "notice not delivered", held.reason,
                       "check the notify URLs; the next `afterparty tick` or `afterparty run` "
                       "sends it again")
    return Finding(notice.version, name, State.PENDING.value, f"notice held, {held.reason}",
                   "`afterparty tick` sends it then")
