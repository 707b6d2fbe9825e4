"""Tasks found by version or name, and the dependencies between them (unknown names, cycles),
checked as task files are loaded."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from afterparty.errors import TaskFileError, UnknownTaskError
from afterparty.loader import TaskFile, load_tasks, scan_tasks_dir

if TYPE_CHECKING:
    from afterparty.definition import Task
    from afterparty.records import Record


@dataclass(frozen=True)
class FoundTask:
    """A task named on the command line: its file, or only its record (the file is gone)."""

    version: str
    name: str
    task_file: TaskFile | None


def by_version_or_name(files: list[TaskFile]) -> dict[str, TaskFile]:
    """Every task file under its version and under its name."""
    return {f.version: f for f in files} | {f.name: f for f in files}


def find_tasks(files: list[TaskFile], records: dict[str, Record], wanted: list[str]) -> list[FoundTask]:
    """The tasks named by version or name, among the files first, then the records;
    UnknownTaskError for a name that is neither."""
    files_by_key = by_version_or_name(files)
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


def dependency_problems(loaded: list[TaskFile], tasks: dict[str, Task],
                        all_files: list[TaskFile]) -> list[str]:
    """Dependencies that name no task file, and a cycle among the tasks loaded."""
    from graphlib import CycleError, TopologicalSorter

    by_key = by_version_or_name(all_files)
    problems = []
    graph: TopologicalSorter[str] = TopologicalSorter()
    for task_file in loaded:
        for key in tasks[task_file.version].depends_on:
            if key not in by_key:
                problems.append(f"{task_file.path}: depends_on names no task: {key!r}")
            else:
                graph.add(task_file.version, by_key[key].version)
    try:
        graph.prepare()
    except CycleError as cycle:
        nodes = list(reversed(cycle.args[1]))[:-1]  # each depends on the next; the last on the first
        start = nodes.index(min(nodes))
        path = nodes[start:] + nodes[:start]
        problems.append("dependency cycle: " + " -> ".join([*path, path[0]]))
    return problems


def load_checked(task_files: list[TaskFile], all_files: list[TaskFile], project_root: str) -> dict[str, Task]:
    """Import task files (the project root on ``sys.path``) and check their dependencies
    among ``all_files``; one TaskFileError listing every problem before anything runs."""
    if project_root not in sys.path:
        sys.path.insert(0, project_root)
    tasks = load_tasks(task_files)
    problems = dependency_problems(task_files, tasks, all_files)
    if problems:
        raise TaskFileError(problems)
    return tasks


def check_task_files(tasks_dir: str, project_root: str) -> list[TaskFile]:
    """Import every task file and check names and dependencies (``afterparty check``)."""
    files = scan_tasks_dir(tasks_dir)
    load_checked(files, files, project_root)
    return files
