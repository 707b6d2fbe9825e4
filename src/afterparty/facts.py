"""What a task file says about itself without running it: its checksum, and the literal
options of its @task read from the syntax tree."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    import ast

_RACY_NS = 2_000_000_000

def file_checksum(path: str) -> str:
    """A task file's checksum as recorded: the SHA-256 of its bytes, then the file's size and
    modification time when it was read (``<sha256> <size>:<mtime_ns>``), so that ``status``
    can tell an unchanged file without reading it."""
    return read_with_checksum(path)[1]


def read_with_checksum(path: str) -> tuple[bytes, str]:
    """A task file's bytes, and its checksum (``file_checksum``) from that one reading (or
    from this process's earlier one, while the file is as it was then: ``_reading``)."""
    kept = _reading(path)
    return kept.source, kept.checksum


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

    __slots__ = ("checksum", "description", "environments", "group", "literal", "manual", "owner",
                 "recurring", "reminders")

    def __init__(self, checksum: str, description: str, environments: tuple[str, ...] | None,
                 group: str | None, *, literal: bool = False, manual: bool | None = None,
                 recurring: bool | None = None, owner: str | None = None,
                 reminders: tuple[object, object, object] | None = None) -> None:
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
        # The literal owner= of a human step, for reminders (None: absent or not a literal).
        self.owner = owner
        # The literal remind_every=, escalate_after= and escalate_to= of a human step (each
        # None when absent); None: not known without an import.
        self.reminders = reminders

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"SourceFacts({fields})"


class _Reading:
    """A task file as this process read it: its identity and stamp then, its bytes, its
    checksum, and its facts once parsed."""

    __slots__ = ("checksum", "facts", "identity", "source")

    def __init__(self, identity: tuple[int, int, str] | None, source: bytes, checksum: str) -> None:
        self.identity = identity
        self.source = source
        self.checksum = checksum
        self.facts: SourceFacts | None = None


# What a process has read of each task file, by path: a run asks for a file's facts three times
# (the lock-free look, the look before the lock, the decision under it), and for its bytes once
# more (an attempt keeps the source it runs).
_read: dict[str, _Reading] = {}


def _reading(path: str) -> _Reading:
    """The file at ``path``, read again only when its identity, size or modification time
    changed since this process read it (never kept for a file written moments before: see
    ``_checksum``). OSError when it cannot be read."""
    try:
        stat = os.stat(path)
    except OSError:
        identity = None  # opening it says what is wrong
    else:
        identity = (stat.st_dev, stat.st_ino, _stamp(stat))
        kept = _read.get(path)
        if kept is not None and kept.identity == identity:
            return kept
    with open(path, "rb") as fh:
        source = fh.read()
        reading = _Reading(identity, source, _checksum(fh, source))
    if identity is not None and reading.checksum.endswith(f" {identity[2]}"):  # stamped, as now
        _read[path] = reading
    return reading


def read_source_facts(path: str) -> SourceFacts:
    """A task file's checksum and the literal options of its @task, without running it.

    The file is parsed once and only its top-level statements are looked at: the imports that
    bind afterparty's ``task`` (``from afterparty import task as t``, ``import afterparty as ap``)
    and the decorators of functions and classes. A file that does not parse is not literal; its
    import reports the problem. Never raises for the file's contents (only for reading it).
    Read again only when the file's identity, size or modification time changed since this
    process read it (never for a file written moments before: see ``_checksum``).
    """
    reading = _reading(path)
    if reading.facts is None:
        reading.facts = _parse_source_facts(path, reading.source, reading.checksum)
    return reading.facts


def _parse_source_facts(path: str, source: bytes, checksum: str) -> SourceFacts:
    import ast

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
        owner=_literal_text(keywords.get("owner")),
        reminders=_literal_reminders(keywords),
    )


def _literal_reminders(keywords: dict[str, ast.expr]) -> tuple[object, object, object] | None:
    """A human step's reminder options as written, when each is a literal (or absent)."""
    import ast

    values = []
    for name in ("remind_every", "escalate_after", "escalate_to"):
        value = keywords.get(name)
        if value is not None and not isinstance(value, ast.Constant):
            return None
        values.append(None if value is None else value.value)
    return values[0], values[1], values[2]


def _literal_text(value: ast.expr | None) -> str | None:
    """A literal string option (``owner="ops"``); None when absent or not a literal."""
    import ast

    return value.value if isinstance(value, ast.Constant) and isinstance(value.value, str) else None


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
