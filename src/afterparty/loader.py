"""Finds task files on disk by their names, and imports them on demand (what a file says
without being imported is facts.py's)."""

from __future__ import annotations

import os
import re
import sys

from afterparty.errors import ConfigError, TaskFileError
from afterparty.tuples import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:

    from afterparty.definition import Task

TASK_FILE_NAME = re.compile(r"^(\d{14})_([a-z0-9_]+)\.py$")


class TaskFile(NamedTuple):
    """A task file known by its name alone: nothing in it has been read or run."""

    version: str
    name: str
    # The directory, shared by every task file of a listing: ten thousand task files keep
    # one string, and a path is made only for the few that are read.
    directory: str

    @property
    def label(self) -> str:
        return f"{self.version}_{self.name}"

    @property
    def path(self) -> str:
        return os.path.join(self.directory, f"{self.version}_{self.name}.py")


# Hidden files, helpers starting with ``_`` and byte-code are not task files.
IGNORED_PREFIXES = (".", "_")
IGNORED_SUFFIXES = (".pyc", ".pyo")


def is_ignored(entry_name: str) -> bool:
    """Hidden files, helpers starting with ``_`` and byte-code are not task files."""
    return entry_name.startswith(IGNORED_PREFIXES) or entry_name.endswith(IGNORED_SUFFIXES)


# A whole listing, one name a line, in a single pass (with ten thousand task files several
# times faster than a match per name): a task file's version and name, or empty groups for a
# name that is ignored.
_LISTING = re.compile(
    "^(?:{}|(?:{}).*|.*(?:{}))$".format(
        TASK_FILE_NAME.pattern.strip("^$"), "|".join(map(re.escape, IGNORED_PREFIXES)),
        "|".join(map(re.escape, IGNORED_SUFFIXES))),
    re.MULTILINE)


def scan_tasks_dir(tasks_dir: str) -> list[TaskFile]:
    """List the task files of a directory in version order, reading names only; TaskFileError
    names every file that is not a task file (sub-folders are ignored)."""
    files, problems = _read_dir(tasks_dir)
    if problems:
        raise TaskFileError(problems)
    return files


def scan_tasks_dir_leniently(tasks_dir: str) -> tuple[list[TaskFile], list[str]]:
    """The task files, and a line for each file that is not one: for the commands that only
    look (status, show), which answer and name the problem instead of refusing."""
    return _read_dir(tasks_dir)


def list_task_files(tasks_dir: str) -> list[TaskFile] | None:
    """The task files as ``scan_tasks_dir`` finds them, or None where it would complain."""
    try:
        files, problems = _read_dir(tasks_dir)
    except ConfigError:
        return None
    return None if problems else files


def _read_dir(tasks_dir: str) -> tuple[list[TaskFile], list[str]]:
    """The task files of a directory in version order, and what is wrong with the others.

    Every deploy's no-op check lists the directory, so this is written for ten thousand names:
    one pass of the pattern over the whole listing, and a look at the file system only for
    names that are not task files (a sub-folder is ignored, anything else is a problem).
    """
    try:
        entries = os.listdir(tasks_dir)
    except FileNotFoundError:
        raise ConfigError(
            f"tasks directory {tasks_dir!r} does not exist: run `afterparty init`, "
            "or point --tasks-dir / AFTERPARTY_TASKS_DIR at it"
        ) from None
    except NotADirectoryError:
        raise ConfigError(f"tasks directory {tasks_dir!r} is not a directory") from None
    entries.sort()  # a 14-digit version, then "_": text order is version order
    listing = "\n".join(entries)
    found = _LISTING.findall(listing)
    if len(found) == len(entries) and listing.count("\n") == max(len(entries) - 1, 0):
        pairs, problems = [pair for pair in found if pair[0]], []
    else:  # a sub-folder, or a name that is not a task file's
        names = [name for name in entries if not is_ignored(name)]
        pairs = [match.groups() for match in map(TASK_FILE_NAME.match, names) if match]
        problems = sorted(
            f"{os.path.join(tasks_dir, name)}: not a task file name: expected <14-digit "
            "version>_<name>.py with a name of lower-case letters, digits and _ (prefix helpers "
            "with _)" for name in names
            if not TASK_FILE_NAME.match(name) and not os.path.isdir(os.path.join(tasks_dir, name)))
    # tuple.__new__ itself: the namedtuple's own __new__ is a Python call per file.
    make = tuple.__new__
    files = [make(TaskFile, (version, name, tasks_dir)) for version, name in pairs]
    return files, problems + _duplicate_problems(pairs, files)


def _duplicate_problems(pairs: list[tuple[str, str]], files: list[TaskFile]) -> list[str]:
    names_by_version = dict(pairs)
    if len(names_by_version) == len(set(names_by_version.values())) == len(pairs):
        return []
    problems = []
    by_version: dict[str, TaskFile] = {}
    by_name: dict[str, TaskFile] = {}
    for f in files:
        if f.version in by_version:
            problems.append(f"{f.path}: version {f.version} is also used by {by_version[f.version].path}")
        if f.name in by_name:
            problems.append(f"{f.path}: name {f.name!r} is also used by {by_name[f.name].path}")
        by_version.setdefault(f.version, f)
        by_name.setdefault(f.name, f)
    return problems


def load_tasks(task_files: list[TaskFile]) -> dict[str, Task]:
    """Import task files, collecting every problem before raising one TaskFileError."""
    from afterparty import definition

    tasks: dict[str, Task] = {}
    problems: list[str] = []
    for task_file in task_files:
        collected: list[Task] = []
        definition._collected = collected
        try:
            _import_file(task_file)
        # A task file may raise anything while it is imported, sys.exit() included (a click
        # command called at module level): a problem of that file, not the end of the run.
        # KeyboardInterrupt (a real Ctrl-C) and signals still stop everything.
        except (Exception, SystemExit) as exc:
            problems.append(_describe_import_error(task_file, exc))
            continue
        finally:
            definition._collected = None
        if len(collected) != 1:
            found = "no @task" if not collected else f"{len(collected)} @task functions"
            problems.append(f"{task_file.path}: {found}; a task file declares exactly one")
            continue
        tasks[task_file.version] = collected[0]
    if problems:
        raise TaskFileError(problems)
    return tasks


def _import_file(task_file: TaskFile) -> None:
    import importlib.util

    module_name = f"afterparty_tasks.{task_file.label}"
    spec = importlib.util.spec_from_file_location(module_name, task_file.path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise


def _describe_import_error(task_file: TaskFile, exc: Exception | SystemExit) -> str:
    if isinstance(exc, SyntaxError):
        return f"{task_file.path}:{exc.lineno}: syntax error: {exc.msg}"
    import traceback

    line = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        if os.path.abspath(frame.filename) == os.path.abspath(task_file.path):
            line = f":{frame.lineno}"
    if isinstance(exc, SystemExit):
        called = "sys.exit()" if exc.code is None else f"sys.exit({exc.code!r})"
        return f"{task_file.path}{line}: cannot import: calls {called} while being imported"
    from afterparty.definition import TaskOptionError

    if isinstance(exc, TaskOptionError):
        return f"{task_file.path}{line}: invalid option: {exc}"
    return f"{task_file.path}{line}: cannot import: {type(exc).__name__}: {exc}"
