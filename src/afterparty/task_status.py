"""What status and show report: task files and records side by side, and one task's history."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from afterparty.environment import Environment
from afterparty.errors import UnknownTaskError
from afterparty.loader import SourceFacts, TaskFile, is_modified, read_source_facts, scan_tasks_dir
from afterparty.recorder import AWAITING, DONE_STATES, PENDING, Attempt, Record


@dataclass
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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def task_statuses(environment: Environment) -> list[TaskStatus]:
    """Every task file and every record, in version order, without importing any task."""
    files = {f.version: f for f in scan_tasks_dir(environment.settings.tasks_dir)}
    records = environment.recorder.read_records()
    rows: list[TaskStatus] = []
    for version in sorted(files.keys() | records.keys()):  # 14 digits each: text order is numeric
        task_file, record = files.get(version), records.get(version)
        state = record.state if record else PENDING
        facts, modified = _file_facts(task_file, record if state != PENDING else None)
        description = facts.description if facts else ""
        rows.append(TaskStatus(
            version=version,
            name=task_file.name if task_file else record.name if record else "",
            state=state,
            description=description or (record.description or "" if record else ""),
            attempts=record.attempts if record else 0,
            last_run_at=record.last_started_at if record else None,
            finished_at=record.finished_at if record else None,
            last_error=record.last_error if record else None,
            file_missing=task_file is None,
            modified=modified,
            path=task_file.path if task_file else None,
            reason=_reason(environment.settings.environment, facts, record),
        ))
    return rows


def _file_facts(task_file: TaskFile | None, record: Record | None) -> tuple[SourceFacts | None, bool]:
    """What a task file says and whether it changed since its record's last attempt; an
    unchanged file (same size and time as recorded) is not read, and says nothing new."""
    if task_file is None:
        return None, False
    if record is not None and record.checksum:
        if not is_modified(record.checksum, task_file.path, os.stat(task_file.path)):
            return None, False
        return read_source_facts(task_file.path), True
    return read_source_facts(task_file.path), False


def _reason(environment: str, facts: SourceFacts | None, record: Record | None) -> str | None:
    """Why a pending task is not running: not meant for here, or what it waits for."""
    if record is None and facts is not None and facts.environments is not None \
            and environment not in facts.environments:
        return "not for this environment"
    if record is not None and record.state == AWAITING:
        return f"awaits confirmation: afterparty confirm {record.version}"
    if record is not None and record.waiting_reason and record.state not in DONE_STATES:
        return f"waiting: {record.waiting_reason}"
    return None


def task_history(environment: Environment, wanted: str) -> tuple[TaskStatus, list[Attempt]]:
    """One task's status row and every attempt and decision in its history."""
    for row in task_statuses(environment):
        if wanted in (row.version, row.name):
            return row, environment.recorder.read_attempts(row.version)
    raise UnknownTaskError(
        f"no task file or record has version or name {wanted!r}: see `afterparty status`"
    )
