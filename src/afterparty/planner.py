"""Decides what is pending and whether a pending task may run now (no SQL, no running)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from afterparty.recorder import DONE_STATES, HUMAN_STATES, SUCCEEDED

if TYPE_CHECKING:
    from afterparty.config import Settings
    from afterparty.definition import Task
    from afterparty.loader import TaskFile
    from afterparty.recorder import Record


def check_task_files(settings: Settings) -> list[TaskFile]:
    """Import every task file and check names and dependencies; raises TaskFileError."""
    import sys

    from afterparty.errors import TaskFileError
    from afterparty.loader import load_tasks, scan_tasks_dir

    files = scan_tasks_dir(settings.tasks_dir)
    if settings.project_root not in sys.path:
        sys.path.insert(0, settings.project_root)
    tasks = load_tasks(files)
    problems = dependency_problems(files, tasks, files)
    if problems:
        raise TaskFileError(problems)
    return files


def pending_task_files(files: list[TaskFile], states: dict[str, str],
                       environment: str) -> list[TaskFile]:
    """Task files ``run`` has work for, in version order, without importing any of them.

    A file with no record whose @task literally names other environments is not pending
    here: it is never run nor recorded in this environment.
    """
    from afterparty.loader import read_source_facts

    pending = []
    for task_file in files:
        state = states.get(task_file.version)
        if state is None:
            environments = read_source_facts(task_file.path).environments
            if environments is not None and environment not in environments:
                continue
        elif state in DONE_STATES or state in HUMAN_STATES:
            continue
        pending.append(task_file)
    return pending


class FoundTask:
    """A task named on the command line: its file, its record, or both."""

    __slots__ = ("name", "task_file", "version")

    def __init__(self, version: str, name: str, task_file: TaskFile | None) -> None:
        self.version = version
        self.name = name
        self.task_file = task_file


def find_tasks(files: list[TaskFile], records: dict[str, Record], wanted: list[str]) -> list[FoundTask]:
    """The tasks named by version or name, among the files first, then the records (a task
    whose file is gone); UnknownTaskError for a name that is neither."""
    from afterparty.errors import UnknownTaskError

    files_by_key = {f.version: f for f in files} | {f.name: f for f in files}
    records_by_key = {r.version: r for r in records.values()} | {r.name: r for r in records.values()}
    found: list[FoundTask] = []
    for key in wanted:
        if key in files_by_key:
            task_file = files_by_key[key]
            found.append(FoundTask(task_file.version, task_file.name, task_file))
        elif key in records_by_key:
            record = records_by_key[key]
            found.append(FoundTask(record.version, record.name, None))
        else:
            raise UnknownTaskError(
                f"no task file or record has version or name {key!r}: see `afterparty status`"
            )
    return found


class Readiness:
    """Whether a pending task may run now: ``reason`` says why not; ``later`` waits for this run."""

    __slots__ = ("later", "reason")

    def __init__(self, reason: str | None = None, later: bool = False) -> None:
        self.reason = reason
        self.later = later


def readiness(task: Task, task_file: TaskFile, states: dict[str, str],
              files_by_key: dict[str, TaskFile], this_run: set[str],
              context: Callable[[], Any]) -> Readiness:
    """Dependencies first, then ``not_before``, then the ``when`` condition, called with the
    ``ctx`` that ``context`` makes (only then)."""
    unmet = []
    for key in task.depends_on:
        dependency = files_by_key[key]
        state = states.get(dependency.version)
        if state == SUCCEEDED:
            continue
        if dependency.version in this_run and dependency.version != task_file.version:
            return Readiness(later=True)
        unmet.append(f"{dependency.label} ({state or 'pending'})")
    if unmet:
        return Readiness(f"depends on {', '.join(unmet)}")
    if task.not_before is not None and datetime.now(timezone.utc) < task.not_before:
        return Readiness(f"not before {task.not_before.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC")
    if task.when is not None:
        name = getattr(task.when, "__name__", "when")
        try:
            allowed = task.when(context())
        except Exception as exc:  # a condition that cannot be checked is not met
            return Readiness(f"condition {name} raised {type(exc).__name__}: {exc}")
        if not allowed:
            doc = (task.when.__doc__ or "").strip().split("\n")[0]
            return Readiness(f"condition {name} is not met yet" + (f" ({doc})" if doc else ""))
    return Readiness()


def dependency_problems(loaded: list[TaskFile], tasks: dict[str, Task],
                        all_files: list[TaskFile]) -> list[str]:
    """Dependencies that name no task, and cycles among the tasks about to run."""
    by_key = {f.version: f for f in all_files} | {f.name: f for f in all_files}
    problems = []
    edges: dict[str, list[str]] = {}
    for task_file in loaded:
        task = tasks[task_file.version]
        for key in task.depends_on:
            if key not in by_key:
                problems.append(f"{task_file.path}: depends_on names no task: {key!r}")
            else:
                edges.setdefault(task_file.version, []).append(by_key[key].version)
    cycle = _find_cycle(edges)
    if cycle:
        problems.append("dependency cycle: " + " -> ".join(cycle))
    return problems


def _find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node):], node]
        if node in done:
            return None
        visiting.append(node)
        for target in edges.get(node, []):
            found = visit(target)
            if found:
                return found
        visiting.pop()
        done.add(node)
        return None

    for start in sorted(edges):
        found = visit(start)
        if found:
            return found
    return None
