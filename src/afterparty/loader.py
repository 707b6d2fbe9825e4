"""Finds task files on disk, reads their version and name, reads the literal options of their
@task from its syntax tree without running them, and imports them on demand."""

from __future__ import annotations

import os
import re
import sys
import time
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

from afterparty.errors import ConfigError, TaskFileError

if TYPE_CHECKING:
    import ast

    from afterparty.definition import Task

TASK_FILE_NAME = re.compile(r"^(\d{14})_([a-z0-9_]+)\.py$")
_RACY_NS = 2_000_000_000


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


# The task file name pattern applied to a whole listing, one name a line, in a single pass:
# with ten thousand task files several times faster than a match per name.
_TASK_FILE_LINES = re.compile(TASK_FILE_NAME.pattern, re.MULTILINE)


def scan_tasks_dir(tasks_dir: str) -> list[TaskFile]:
    """List the task files of a directory in version order, reading names only; TaskFileError
    names every file that is not a task file (sub-folders are ignored)."""
    files, problems = _read_dir(tasks_dir)
    if problems:
        raise TaskFileError(problems)
    return files


def list_task_files(tasks_dir: str) -> list[TaskFile] | None:
    """The task files as ``scan_tasks_dir`` finds them, or None where it would complain."""
    try:
        files, problems = _read_dir(tasks_dir)
    except ConfigError:
        return None
    return None if problems else files


def _read_dir(tasks_dir: str) -> tuple[list[TaskFile], list[str]]:
    """The task files of a directory in version order, and what is wrong with the others."""
    try:
        entries = list(os.scandir(tasks_dir))
    except FileNotFoundError:
        raise ConfigError(
            f"tasks directory {tasks_dir!r} does not exist: run `afterparty init`, "
            "or point --tasks-dir / AFTERPARTY_TASKS_DIR at it"
        ) from None
    except NotADirectoryError:
        raise ConfigError(f"tasks directory {tasks_dir!r} is not a directory") from None
    names = [entry.name for entry in entries if not (is_ignored(entry.name) or entry.is_dir())]
    listing = "\n".join(names)
    pairs = _TASK_FILE_LINES.findall(listing)
    problems: list[str] = []
    if len(pairs) != len(names) or any("\n" in name for name in names):
        pairs = [match.groups() for match in map(TASK_FILE_NAME.match, names) if match]
        problems = sorted(
            f"{os.path.join(tasks_dir, name)}: not a task file name: expected <14-digit "
            "version>_<name>.py with a name of lower-case letters, digits and _ (prefix helpers "
            "with _)" for name in names if not TASK_FILE_NAME.match(name))
    files = sorted(TaskFile(version, name, os.path.join(tasks_dir, f"{version}_{name}.py"))
                   for version, name in pairs)  # 14-digit versions: text order is numeric order
    return files, problems + _duplicate_problems(files)


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
    """What a task file says about itself, read from its syntax tree without running it.

    Each option is its literal value, or None when it is not known without importing the file
    (not written as a literal, or the file's one @task cannot be told). ``environments`` is None
    also when absent (every environment): a task file may run here unless it names others.
    ``literal`` is True only when the file parses, exactly one ``@task`` of afterparty decorates
    a top-level function, and every option that decides where or whether it runs
    (``environments``, ``group``) is absent or literal; when it is False, only an import of the
    file tells (callers fall back to it, never guess). ``description`` is for display only.
    """

    __slots__ = ("checksum", "description", "environments", "group", "literal", "manual", "recurring")

    def __init__(self, checksum: str, description: str, environments: tuple[str, ...] | None,
                 group: str | None, *, literal: bool = False, manual: bool | None = None,
                 recurring: bool | None = None) -> None:
        self.checksum = checksum
        # The literal description=, else the first line of the function's docstring, else "".
        self.description = description
        # None: every environment, or not known without an import (see literal).
        self.environments = environments
        # The literal group=, "default" when absent; None: not known without an import.
        self.group = group
        self.literal = literal
        # The literal manual= / recurring=, False when absent; None: not known without an import.
        self.manual = manual
        self.recurring = recurring

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"SourceFacts({fields})"


def read_source_facts(path: str) -> SourceFacts:
    """A task file's checksum and the literal options of its @task, without running it.

    The file is parsed once and only its top-level statements are looked at: the imports that
    bind afterparty's ``task`` (``from afterparty import task as t``, ``import afterparty as ap``)
    and the decorators of functions and classes. A file that does not parse is not literal; its
    import reports the problem. Never raises for the file's contents (only for reading it).
    """
    import ast

    with open(path, "rb") as fh:
        source = fh.read()
        checksum = _checksum(fh, source)
    try:
        # The parser's warnings (an invalid escape sequence) are the import's too; turned into
        # errors, they make the file not literal, and the import reports them.
        module = ast.parse(source, path)
    # The parser raises ValueError for NUL bytes on some versions, and RecursionError or
    # MemoryError for source nested too deeply; all of them are the import's to report.
    except (SyntaxError, ValueError, UnicodeError, RecursionError, MemoryError):
        return SourceFacts(checksum, "", None, None)
    found = _find_task_decorators(module.body, source)
    if found is None or len(found) != 1:
        return SourceFacts(checksum, "", None, None)
    decorator, function = found[0]
    return _facts_of(checksum, decorator, function)


# What a name bound at the top level of a task file refers to.
_TASK, _PACKAGE, _DEFINITION, _UNKNOWN = "task", "afterparty", "afterparty.definition", "unknown"
_MODULE_KINDS = {"afterparty": _PACKAGE, "afterparty.definition": _DEFINITION}
# definition.DEFAULT_GROUP, not imported from there: reading facts is on the lock-free path,
# which does not load the definition of tasks (tests/test_task_facts.py checks they agree).
_DEFAULT_GROUP = "default"


def _find_task_decorators(body: list[ast.stmt], source: bytes) -> list[tuple[ast.expr, ast.stmt]] | None:
    """Each decorator that is afterparty's ``task`` (or a call of it), with the definition it
    decorates, among the top-level statements of a module; None when that cannot be told
    without running the file."""
    import ast

    bindings: dict[str, str] = {}  # the names that refer to afterparty's task or modules
    found: list[tuple[ast.expr, ast.stmt]] = []
    lines: list[bytes] | None = None
    for statement in body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for decorator in statement.decorator_list:
                kind = _kind_of(decorator.func if isinstance(decorator, ast.Call) else decorator,
                                bindings)
                if kind == _UNKNOWN:
                    return None
                if kind == _TASK:
                    found.append((decorator, statement))
            if isinstance(statement, ast.ClassDef):  # a class body runs at import, a function's not
                lines = lines or source.splitlines()
                if _mentions(lines, statement, bindings) and not _follow(statement.body, bindings):
                    return None
            bindings.pop(statement.name, None)
        elif isinstance(statement, ast.ImportFrom):
            _bind_import_from(statement, bindings)
        elif isinstance(statement, ast.Import):
            for alias in statement.names:
                if alias.asname is not None:
                    _rebind(bindings, alias.asname, _MODULE_KINDS.get(alias.name))
                else:  # `import afterparty.definition` binds `afterparty`
                    top = alias.name.partition(".")[0]
                    _rebind(bindings, top, _MODULE_KINDS.get(top))
        elif not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)):
            lines = lines or source.splitlines()
            if _mentions(lines, statement, bindings) and not _follow([statement], bindings):
                return None
    return found


def _mentions(lines: list[bytes], statement: ast.stmt, bindings: dict[str, str]) -> bool:
    """Whether the lines of a statement may import, or name a name referring to afterparty:
    the cheap test that spares walking the statements that cannot matter (constants, data)."""
    text = b"\n".join(lines[statement.lineno - 1:statement.end_lineno or statement.lineno])
    # Identifiers are NFKC-normalized: outside ASCII, a name may be spelled differently.
    return not text.isascii() or b"import" in text or any(name.encode() in text for name in bindings)


def _follow(statements: list[ast.stmt], bindings: dict[str, str]) -> bool:
    """Follow statements other than a top-level import or definition (an assignment, a call,
    a block: if, try, with, for...): False when they may declare a task (a call of task, a
    decorated definition inside a block). A name they may bind refers to something known only
    at run time afterwards, when it is afterparty's or may be."""
    import ast

    rebinds = False
    for statement in statements:
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue  # a docstring
        for node in ast.walk(statement):
            if isinstance(node, ast.Call):
                if _kind_of(node.func, bindings) in (_TASK, _UNKNOWN):
                    return False
            elif isinstance(node, ast.Name):
                if not isinstance(node.ctx, ast.Load) and node.id in bindings:
                    bindings[node.id] = _UNKNOWN
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                module = (node.module or "") if isinstance(node, ast.ImportFrom) else ""
                for alias in node.names:
                    name = alias.asname or alias.name.partition(".")[0]
                    from_afterparty = (module or alias.name).startswith("afterparty")
                    if name == "*":
                        rebinds = True
                        name = "task"
                    if from_afterparty or name in bindings:
                        bindings[name] = _UNKNOWN
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                rebinds = True
            else:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and any(
                        _kind_of(decorator, bindings) in (_TASK, _UNKNOWN)
                        for decorator in node.decorator_list):
                    return False
                # def, class, except ... as, match patterns: names bound by a plain string
                for bound in (getattr(node, "name", None), getattr(node, "rest", None)):
                    if bound in bindings:
                        bindings[bound] = _UNKNOWN
    if rebinds:
        for name in bindings:
            bindings[name] = _UNKNOWN
    return True


def _bind_import_from(statement: ast.ImportFrom, bindings: dict[str, str]) -> None:
    module = statement.module if statement.level == 0 else None
    for alias in statement.names:
        if alias.name == "*":
            if module in _MODULE_KINDS:
                bindings["task"] = _TASK  # both export task (afterparty through __all__)
            else:  # may rebind any name
                for name in bindings:
                    bindings[name] = _UNKNOWN
            continue
        kind = None
        if module in _MODULE_KINDS and alias.name == "task":
            kind = _TASK
        elif module == "afterparty" and alias.name == "definition":
            kind = _DEFINITION
        _rebind(bindings, alias.asname or alias.name, kind)


def _rebind(bindings: dict[str, str], name: str, kind: str | None) -> None:
    if kind is None:
        bindings.pop(name, None)
    else:
        bindings[name] = kind


def _kind_of(expression: ast.expr, bindings: dict[str, str]) -> str | None:
    """What a decorator's name refers to: afterparty's task, one of its modules, something
    that may be either (_UNKNOWN), or anything else (None)."""
    import ast

    if isinstance(expression, ast.Name):
        return bindings.get(expression.id)
    if isinstance(expression, ast.Attribute):
        base = _kind_of(expression.value, bindings)
        if base == _UNKNOWN:
            return _UNKNOWN
        if base in (_PACKAGE, _DEFINITION) and expression.attr == "task":
            return _TASK
        if base == _PACKAGE and expression.attr == "definition":
            return _DEFINITION
    return None


def _facts_of(checksum: str, decorator: ast.expr, function: ast.stmt) -> SourceFacts:
    """The facts of the one @task of a file, from its decorator and the definition under it."""
    import ast

    keywords: dict[str, ast.expr] = {}
    opaque = False  # positional arguments, **options or an option given twice
    if isinstance(decorator, ast.Call):
        opaque = bool(decorator.args)
        for keyword in decorator.keywords:
            if keyword.arg is None or keyword.arg in keywords:
                opaque = True
            else:
                keywords[keyword.arg] = keyword.value
    given = keywords.get("description")
    description = ""
    if isinstance(given, ast.Constant) and isinstance(given.value, str):
        description = " ".join(given.value.split())
    if not description and (given is None or isinstance(given, ast.Constant)) and not opaque:
        description = _docstring_line(function)
    if opaque:
        return SourceFacts(checksum, description, None, None)
    environments, environments_known = _literal_environments(keywords.get("environments"))
    group: str | None = _DEFAULT_GROUP
    if "group" in keywords:
        value = keywords["group"]
        group = value.value if isinstance(value, ast.Constant) and isinstance(value.value, str) else None
    return SourceFacts(
        checksum, description, environments, group,
        literal=environments_known and group is not None,
        manual=_literal_flag(keywords.get("manual")),
        recurring=_literal_flag(keywords.get("recurring")),
    )


def _literal_environments(value: ast.expr | None) -> tuple[tuple[str, ...] | None, bool]:
    """The environments= of a @task and whether they are known without an import."""
    import ast

    if value is None or (isinstance(value, ast.Constant) and value.value is None):
        return None, True
    if not isinstance(value, (ast.List, ast.Tuple)):
        return None, False  # a name, a call, a comprehension... or a string, which @task refuses
    try:
        names = ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None, False
    if all(isinstance(name, str) for name in names):
        return tuple(names), True
    return None, False


def _literal_flag(value: ast.expr | None) -> bool | None:
    import ast

    if value is None:
        return False
    if isinstance(value, ast.Constant):
        return bool(value.value)
    return None


def _docstring_line(function: ast.stmt) -> str:
    """The first line of a definition's docstring, as @task takes it, whitespace collapsed."""
    import ast

    body = getattr(function, "body", None)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return " ".join(body[0].value.value.strip().split("\n")[0].split())
    return ""


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
    return f"{task_file.path}{line}: cannot import: {type(exc).__name__}: {exc}"


def load_checked(task_files: list[TaskFile], all_files: list[TaskFile], project_root: str) -> dict[str, Task]:
    """Import task files (the project root on ``sys.path``) and check their dependencies
    among ``all_files``; one TaskFileError listing every problem before anything runs."""
    from afterparty.graph import dependency_problems

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
