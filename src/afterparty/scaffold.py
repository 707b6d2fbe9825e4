"""Writes what a project starts with: the tasks directory, the settings table, new task files."""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone
from string import Template

from afterparty.config import DEFAULTS, Settings
from afterparty.errors import UsageError
from afterparty.loader import scan_tasks_dir

SETTINGS_TABLE = """
[tool.afterparty]
tasks_dir = "release_tasks"
# Where records live; prefer AFTERPARTY_DATABASE_URL or DATABASE_URL for real credentials.
# database_url = "sqlite:///afterparty.sqlite3"
# Deploy scripts set AFTERPARTY_ENV=production; a laptop stays "development".
# environment = "development"
"""


def init_project(directory: str) -> list[str]:
    """Create the tasks directory and a [tool.afterparty] table; returns what it created."""
    from afterparty.config import find_pyproject, read_pyproject_table

    created: list[str] = []
    pyproject = find_pyproject(directory) or os.path.join(directory, "pyproject.toml")
    if not os.path.exists(pyproject):
        with open(pyproject, "w", encoding="utf-8") as fh:
            fh.write(SETTINGS_TABLE.lstrip())
        created.append(f"{pyproject} with a [tool.afterparty] table")
    elif not _has_settings_table(pyproject):
        read_pyproject_table(pyproject)  # refuse to append to a file that is not valid TOML
        with open(pyproject, "a", encoding="utf-8") as fh:
            fh.write(SETTINGS_TABLE if _ends_with_newline(pyproject) else "\n" + SETTINGS_TABLE)
        created.append(f"[tool.afterparty] table in {pyproject}")
    tasks_dir = os.path.join(os.path.dirname(pyproject), DEFAULTS["tasks_dir"])
    if not os.path.isdir(tasks_dir):
        os.makedirs(tasks_dir)
        created.append(f"{tasks_dir}/")
    return created


def _has_settings_table(pyproject: str) -> bool:
    with open(pyproject, encoding="utf-8") as fh:
        return re.search(r"^\s*\[tool\.afterparty\]", fh.read(), re.M) is not None


def _ends_with_newline(path: str) -> bool:
    with open(path, "rb") as fh:
        data = fh.read()
    return not data or data.endswith(b"\n")


def task_name(raw: str) -> str:
    """Turn what the user typed into a task name: lower case, [a-z0-9_]+."""
    name = re.sub(r"[^a-z0-9_]+", "_", raw.strip().lower())
    name = re.sub(r"_+", "_", name).strip("_")
    if not name:
        raise UsageError(f"{raw!r} has no letters or digits to make a task name from")
    return name


def new_task(settings: Settings, raw_name: str, description: str | None = None,
             now: datetime | None = None, manual: bool = False) -> str:
    """Write a task file from the template; returns its path. Refuses a duplicate name."""
    name = task_name(raw_name)
    existing = scan_tasks_dir(settings.tasks_dir)
    for task_file in existing:
        if task_file.name == name:
            raise UsageError(f"a task named {name!r} already exists: {task_file.path}")
    taken = {f.version for f in existing}
    moment = now or datetime.now(timezone.utc)
    version = moment.strftime("%Y%m%d%H%M%S")
    while version in taken:  # two tasks made within one second
        moment += timedelta(seconds=1)
        version = moment.strftime("%Y%m%d%H%M%S")
    description = description or name.replace("_", " ").capitalize()
    path = os.path.join(settings.tasks_dir, f"{version}_{name}.py")
    source = _template("manual_task.py.tmpl" if manual else "task.py.tmpl").substitute(
        description=description.replace('"""', "'''"), description_literal=repr(description),
        name=name, version=version, command=settings.program,
    )
    with open(path, "x", encoding="utf-8") as fh:
        fh.write(source)
    return path


def new_task_test(settings: Settings, task_path: str) -> str:
    """Write a pytest test for a task into the project's tests folder; returns its path."""
    tests_dir = os.path.join(settings.project_root, "tests")
    os.makedirs(tests_dir, exist_ok=True)
    label = os.path.basename(task_path)[:-3]
    name = label.split("_", 1)[1]
    path = os.path.join(tests_dir, f"test_release_task_{name}.py")
    source = _template("task_test.py.tmpl").substitute(
        label=label, name=name,
        path_literal=repr(os.path.relpath(task_path, settings.project_root)),
    )
    with open(path, "x", encoding="utf-8") as fh:
        fh.write(source)
    return path


def _template(file_name: str) -> Template:
    with open(os.path.join(os.path.dirname(__file__), "templates", file_name), encoding="utf-8") as fh:
        return Template(fh.read())
