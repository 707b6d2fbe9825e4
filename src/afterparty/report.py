"""What ``status``, ``show`` and ``run`` report, as typed values: rows, histories and the
``--json`` shapes. Imports a task file only when its options are not literals: only an import
tells whether it runs here, as it does for ``run``."""

from __future__ import annotations

import os
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from afterparty.facts import SourceFacts, is_modified, read_source_facts
from afterparty.states import DONE, State, state_of

if TYPE_CHECKING:
    from afterparty.loader import TaskFile
    from afterparty.records import Attempt, Record
    from afterparty.results import Awaiting, Background, RunResult, TaskOutcome
    from afterparty.session import Session


# Slots: status may hold ten thousand rows, each made and freed faster without a __dict__.
@dataclass(slots=True)
class TaskStatus:
    """One row of ``status``: a task file, a record, or both."""

    version: str
    name: str
    state: str
    description: str
    attempts: int
    last_run_at: str | None
    finished_at: str | None
    last_error: str | None
    file_missing: bool
    modified: bool
    path: str | None
    reason: str | None = None
    #: A long task's last report (``ctx.progress``): done, total, note, percent, rate (a
    #: second), seconds_left, updated_at, worker; None when it never reported any.
    progress: dict[str, Any] | None = None
    #: A long task's checkpoint (``ctx.checkpoint``), as the task saved it.
    checkpoint: Any = None
    #: Recorded running, but its runner (or worker) is gone: nobody holds its lock any more.
    gone: bool = False


@dataclass(frozen=True)
class Listing:
    """Every task file and the state of every record of an environment, by version: what
    status rows are made of, before anything in a file is looked at (a count by state needs no
    more)."""

    files: dict[str, TaskFile]
    #: The state of each record (records.py's stored word, read once).
    states: dict[str, State]
    #: Every record, when read with the listing; None: status_rows reads those of its tasks.
    records: dict[str, Record] | None = None

    def versions(self) -> list[str]:
        """Every version, in order (14 digits: text order is numeric)."""
        return sorted(self.files.keys() | self.states.keys())

    def state(self, version: str) -> State:
        """A task's state; a file without a record is pending."""
        return self.states.get(version, State.PENDING)


def read_listing(session: Session, problems: list[str] | None = None,
                 records: bool = True) -> Listing:
    """The task files (names only) and the records of an environment (``problems`` as for
    task_statuses); ``records=False``: the records' states only, for a page that shows a few
    tasks of thousands (status_rows reads their records)."""
    files = {f.version: f for f in _task_files(session, problems)}
    if not records:
        return Listing(files, _stored_states(session))
    every = _records(session)
    return Listing(files, {version: state_of(record.state) for version, record in every.items()},
                   every)


def task_statuses(session: Session, problems: list[str] | None = None) -> list[TaskStatus]:
    """Every task file and every record, in version order. With a ``problems`` list, files that
    are no task files are added to it instead of refusing (TaskFileError) to answer at all."""
    listing = read_listing(session, problems)
    return status_rows(session, listing, listing.versions())


def status_rows(session: Session, listing: Listing, versions: list[str]) -> list[TaskStatus]:
    """The status rows of some tasks of a listing (``versions``, in the order given): each
    task's file looked at only here, so that a page showing a few of ten thousand tasks reads
    only theirs."""
    files = listing.files
    records = listing.records if listing.records is not None else _records(session, versions)
    here = (session.settings.environment, session.settings.project_root)
    folder = _folder(session)
    rows = [_status_row(version, files.get(version), records.get(version), folder, here,
                        listing.states)
            for version in versions]
    if listing.states and rows:
        by_version = dict(zip(versions, rows, strict=True))
        _add_progress(session, by_version)
        _add_workers(session, rows)
        _add_held_notices(session, by_version)
        _add_rolled_back(session, by_version, listing.files.keys())
    return rows


def _add_rolled_back(session: Session, rows: dict[str, TaskStatus],
                      present: AbstractSet[str]) -> None:
    """A task of a release that a deploy of an older one rolled back says so (its file is gone:
    ``status`` and the console would only say ``file missing``). ``present``: the versions of
    the task files."""
    from afterparty.releases import rolled_back_here

    for release in rolled_back_here(session, present):
        for version, _ in release.tasks:
            if version in rows:
                rows[version].reason = (
                    f"rolled back: it ran in release {release.release}, deployed here after the "
                    f"release deployed now; `afterparty rollback --release {release.release}`")


def _add_held_notices(session: Session, rows: dict[str, TaskStatus]) -> None:
    """Why a task's notices are still held, as its row's reason when it has none (``notice
    held, waiting: release 4f2c9e1 live for 12 min of 30``)."""
    from afterparty.releases import held_notices

    for held in held_notices(session):
        row = rows.get(held.notice.version)
        if row is not None and row.reason is None:
            row.reason = f"notice held, {held.reason}"


def _add_workers(session: Session, rows: list[TaskStatus]) -> None:
    """Who runs the few running rows, and whether they still do: ``running on worker <host>``
    for a task sent to a worker (its last attempt's host); ``its worker is gone`` or ``its
    runner is gone`` when nobody holds its lease (or the environment lock) any more."""
    prefix = session.settings.table_prefix
    running = State.RUNNING.value
    for row in rows:
        if row.state != running:
            continue
        from afterparty.lease import lock_name  # only for a running task: most lists have none
        from afterparty.states import Action

        attempts = session.recorder.read_attempts(row.version)
        on_worker = bool(attempts) and any(a.action == Action.ENQUEUE.value for a in attempts)
        where = f"{attempts[-1].host}, pid {attempts[-1].pid}" if attempts else "unknown"
        lock = session.database.lock(lock_name(prefix, row.version) if on_worker else prefix)
        session.other_locks.append(lock)  # closed after the database (an SQLite file's descriptor)
        row.gone = lock.is_free()
        if row.gone:
            who = "worker" if on_worker else "runner"
            row.reason = (f"its {who} is gone ({where}): the next `afterparty run` records it "
                          "interrupted, then runs it again or holds it as its on_interrupt says")
        elif on_worker:
            row.reason = f"running on worker {attempts[-1].host} (pid {attempts[-1].pid})"


def _add_progress(session: Session, rows: dict[str, TaskStatus], version: str | None = None) -> None:
    """Long tasks' progress and checkpoints, into their rows (one query each)."""
    recorder = session.recorder
    for found, progress in recorder.read_progress(version).items():
        if found in rows:
            rows[found].progress = progress.shown()
    checkpoints = recorder.read_checkpoints(version)
    if checkpoints:
        import json

        for found, checkpoint in checkpoints.items():
            if found in rows:
                rows[found].checkpoint = json.loads(checkpoint)


def _task_files(session: Session, problems: list[str] | None) -> list[TaskFile]:
    from afterparty.loader import scan_tasks_dir, scan_tasks_dir_leniently

    if problems is None:
        return scan_tasks_dir(session.settings.tasks_dir)
    files, found = scan_tasks_dir_leniently(session.settings.tasks_dir)
    problems.extend(found)
    return files


# Records read by version in one query, a placeholder each, up to this many; beyond, all of them.
_RECORDS_BY_VERSION = 500


def _records(session: Session, versions: list[str] | None = None) -> dict[str, Record]:
    """The records (of ``versions``); none, without creating it, where the SQLite file does not
    exist yet."""
    if session.missing_database_file is not None:
        return {}
    if versions is not None and len(versions) > _RECORDS_BY_VERSION:
        versions = None
    return session.recorder.read_records(versions)


def _stored_states(session: Session) -> dict[str, State]:
    """The records' states, as _records."""
    if session.missing_database_file is not None:
        return {}
    return session.recorder.read_stored_states()


def _folder(session: Session) -> str:
    """The tasks directory as the start of its files' paths (the one directory of a listing:
    a path is made of it and a file's name, ten thousand times faster than joined)."""
    return os.path.join(session.settings.tasks_dir, "")


def _status_row(version: str, task_file: TaskFile | None, record: Record | None, folder: str,
                here: tuple[str, str], states: dict[str, State]) -> TaskStatus:
    """``folder``: the task file's directory (_folder); ``here``: the environment and the
    project's root (for a task file only an import tells about)."""
    state = states[version] if record is not None else State.PENDING
    path = f"{folder}{task_file.label}.py" if task_file is not None else None  # TaskFile.path
    facts, modified = _file_facts(path, record if state is not State.PENDING else None)
    description = facts.description if facts else ""
    return TaskStatus(
        version=version,
        name=task_file.name if task_file else record.name if record else "",
        state=record.state if record else state.value,  # the same word, read faster
        description=description or (record.description or "" if record else ""),
        attempts=record.attempts if record else 0,
        last_run_at=record.last_started_at if record else None,
        finished_at=record.finished_at if record else None,
        last_error=record.last_error if record else None,
        file_missing=task_file is None,
        modified=modified,
        path=path,
        reason=None if state in DONE else _reason(here, task_file, facts, record, state, states),
    )


def _file_facts(path: str | None, record: Record | None) -> tuple[SourceFacts | None, bool]:
    """What a task file says and whether it changed since its record's last attempt; an
    unchanged file (same size and time as recorded) is not read, and says nothing new: one
    stat per task file with a record, all that ``status`` adds to the no-op ``run``."""
    if path is None:
        return None, False
    if record is not None and record.checksum:
        if not is_modified(record.checksum, path, os.stat(path)):
            return None, False
        return read_source_facts(path), True
    return read_source_facts(path), False


def _reason(here: tuple[str, str], task_file: TaskFile | None, facts: SourceFacts | None,
            record: Record | None, state: State, states: dict[str, State]) -> str | None:
    """Why a pending task is not running: not meant for here (planner.meant_for_here, as
    ``run`` decides it), or what it waits for; never asked of a task done (most rows of a long
    history: nothing to wait for)."""
    if record is None:
        from afterparty.planner import meant_for_here

        if task_file is not None and facts is not None and not meant_for_here(task_file, *here):
            return "not for this environment"
        return None
    if state is State.AWAITING:
        return f"awaits confirmation: afterparty confirm {record.version}"
    if state is State.PAUSED:
        return f"paused: afterparty resume {record.version} goes on from its checkpoint"
    if record.waiting_reason:
        from afterparty.planner import reason_now

        now = reason_now(record.waiting_reason, states)
        return f"waiting: {now}" if now else None
    return None


def task_history(session: Session, wanted: str,
                 problems: list[str] | None = None) -> tuple[TaskStatus, list[Attempt]]:
    """One task's status row and every attempt and decision in its history (``problems`` as
    for task_statuses)."""
    from afterparty.graph import find_tasks

    files = _task_files(session, problems)
    records = _records(session)
    found = find_tasks(files, records, [wanted])[0]
    row = _status_row(found.version, found.task_file, records.get(found.version),
                      _folder(session), (session.settings.environment, session.settings.project_root),
                      {version: state_of(record.state) for version, record in records.items()})
    if session.missing_database_file is not None:
        return row, []
    _add_progress(session, {row.version: row}, row.version)
    _add_workers(session, [row])
    return row, session.recorder.read_attempts(found.version)


@dataclass(frozen=True)
class TaskRef:
    """A task named by its version and name."""

    version: str
    name: str


# The version of every --json shape: it changes only when a field changes meaning or goes away
# (new fields may come without it), so that scripts can rely on it.
SCHEMA = 1


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
    #: Background tasks sent to workers (``queued``) or running on one; with --wait-background,
    #: how each ended.
    background: list[Background] = field(default_factory=list)

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
            background=result.background,
        )

    def as_dict(self) -> dict[str, Any]:
        report = {"schema": SCHEMA, **asdict(self)}
        for task in report["tasks"]:
            task["duration"] = round(task["duration"], 4)
            task["state"] = str(task["state"])
        for task in report["background"]:
            task["state"] = str(task["state"])
        return report


@dataclass
class StatusReport:
    """Every task file and record of an environment (``afterparty status --json``)."""

    environment: str
    database: str
    tasks: list[TaskStatus]
    # Files in the tasks directory that are no task files (run and check refuse them).
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **asdict(self)}


@dataclass
class TaskHistory:
    """One task and every attempt and decision in its history (``afterparty show --json``)."""

    task: TaskStatus
    attempts: list[Attempt]

    def as_dict(self) -> dict[str, Any]:
        # Attempts are named tuples (cheap to read by the thousand): each becomes an object.
        return {"schema": SCHEMA, "task": asdict(self.task),
                "attempts": [attempt._asdict() for attempt in self.attempts]}
