"""Finds task files on disk, reads their version and name, and imports them on demand."""

from __future__ import annotations

import os
import re
import sys
import time
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

from afterparty.errors import ConfigError, TaskFileError

if TYPE_CHECKING:
    from afterparty.definition import Task

TASK_FILE_NAME = re.compile(r"^(\d{14})_([a-z0-9_]+)\.py$")
_RACY_NS = 2_000_000_000
_DESCRIPTION = re.compile(r"""\bdescription\s*=\s*(?P<q>"{3}|'{3}|"|')(?P<text>.*?)(?P=q)""", re.S)
_ENVIRONMENTS = re.compile(r"\benvironments\s*=\s*(?P<value>\[[^\]]*\]|\([^)]*\))")
_GROUP = re.compile(r"""\bgroup\s*=\s*(?P<value>"[^"]*"|'[^']*')""")


class TaskFile(NamedTuple):
    """A task file known by its name alone: nothing in it has been read or run."""

    version: str
    name: str
    path: str

    @property
    def label(self) -> str:
        return f"{self.version}_{self.name}"


def is_ignored(entry_name: str) -> bool:
    """Hidden files, helpers starting with ``_`` and byte-code are not task files."""
    return entry_name.startswith((".", "_")) or entry_name.endswith((".pyc", ".pyo"))


def scan_tasks_dir(tasks_dir: str) -> list[TaskFile]:
    """List the task files of a directory in version order, reading names only."""
    try:
        entries = list(os.scandir(tasks_dir))
    except FileNotFoundError:
        raise ConfigError(
            f"tasks directory {tasks_dir!r} does not exist: run `afterparty init`, "
            "or point --tasks-dir / AFTERPARTY_TASKS_DIR at it"
        ) from None
    except NotADirectoryError:
        raise ConfigError(f"tasks directory {tasks_dir!r} is not a directory") from None
    problems: list[str] = []
    files: list[TaskFile] = []
    for entry in entries:
        match = TASK_FILE_NAME.match(entry.name)  # an ignored name never matches
        if match is not None and not entry.is_dir():
            files.append(TaskFile(match[1], match[2], entry.path))
        elif not (is_ignored(entry.name) or entry.is_dir()):
            problems.append(
                f"{entry.path}: not a task file name: expected <14-digit version>_<name>.py "
                "with a name of lower-case letters, digits and _ (prefix helpers with _)"
            )
    files.sort()  # versions have 14 digits each: their text order is their numeric order
    problems.extend(_duplicate_problems(files))
    if problems:
        raise TaskFileError(sorted(problems))
    return files


def _duplicate_problems(files: list[TaskFile]) -> list[str]:
    if len({f.version for f in files}) == len({f.name for f in files}) == len(files):
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


def file_checksum(path: str) -> str:
    """A task file's checksum as recorded: the SHA-256 of its bytes, then the file's size and
    modification time when it was read (``<sha256> <size>:<mtime_ns>``), so that ``status``
    can tell an unchanged file without reading it."""
    with open(path, "rb") as fh:
        return _checksum(fh, fh.read())


class SourceFacts:
    """What a task file says about itself, read from its text without running it."""

    __slots__ = ("checksum", "description", "environments", "group")

    def __init__(self, checksum: str, description: str, environments: tuple[str, ...] | None,
                 group: str | None) -> None:
        self.checksum = checksum
        self.description = description
        # None: no literal `environments=` (every environment, or only known once imported).
        self.environments = environments
        self.group = group


def read_source_facts(path: str) -> SourceFacts:
    """A task file's checksum and the literal options of its @task, without running it."""
    with open(path, "rb") as fh:
        source = fh.read()
        checksum = _checksum(fh, source)
    text = source.decode("utf-8", errors="replace")
    match = _DESCRIPTION.search(text)
    return SourceFacts(
        checksum=checksum,
        description=" ".join(match.group("text").split()) if match else "",
        environments=_literal_strings(_ENVIRONMENTS, text),
        group=(_literal_strings(_GROUP, text) or (None,))[0],
    )


def _literal_strings(pattern: re.Pattern[str], text: str) -> tuple[str, ...] | None:
    """The strings of a literal option (a list, tuple or single string), or None."""
    import ast

    match = pattern.search(text)
    if match is None:
        return None
    try:
        value = ast.literal_eval(match.group("value"))
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def is_modified(recorded: str, path: str, stat: os.stat_result) -> bool:
    """Whether a task file's bytes differ from the recorded checksum; the file is read only
    when its size or modification time differ from those recorded with it."""
    digest, _, recorded_stamp = recorded.partition(" ")
    if recorded_stamp == _stamp(stat):
        return False
    return file_checksum(path).partition(" ")[0] != digest


def _checksum(fh: BinaryIO, source: bytes) -> str:
    import hashlib

    digest = hashlib.sha256(source).hexdigest()
    stat = os.fstat(fh.fileno())
    # A file written moments ago can change again within one tick of the file system's clock
    # and keep its size and time (git's "racy clean" entries): record no stamp for it, so
    # that status always reads it.
    if time.time_ns() - stat.st_mtime_ns < _RACY_NS:
        return digest
    return f"{digest} {_stamp(stat)}"


def _stamp(stat: os.stat_result) -> str:
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def load_task(task_file: TaskFile) -> Task:
    """Import one task file and return the Task it declares; raises TaskFileError."""
    return load_tasks([task_file])[task_file.version]


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
        except Exception as exc:  # a task file may raise anything while it is imported
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


def _describe_import_error(task_file: TaskFile, exc: Exception) -> str:
    if isinstance(exc, SyntaxError):
        return f"{task_file.path}:{exc.lineno}: syntax error: {exc.msg}"
    import traceback

    line = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        if os.path.abspath(frame.filename) == os.path.abspath(task_file.path):
            line = f":{frame.lineno}"
    return f"{task_file.path}{line}: cannot import: {type(exc).__name__}: {exc}"
