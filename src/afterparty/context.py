"""What a task body receives as ``ctx``: logger, environment, release, database, notify."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from afterparty.errors import AfterpartyError
from afterparty.long_tasks import KEEP_CHECKPOINT

if TYPE_CHECKING:
    from afterparty.long_tasks import Checkpoint, LongTask
    from afterparty.outbox import NoticeHolder


class TransactionOwnedError(AfterpartyError):
    """A task tried to end the transaction the runner owns."""


# A statement that would end or leave the runner's transaction (after literals and comments
# are blanked out): COMMIT, ROLLBACK (not to a savepoint), BEGIN, START TRANSACTION, END,
# ABORT, autocommit, or the runner's own savepoint.
_ENDS_TRANSACTION = re.compile(
    r"(?:^|;)\s*(?:COMMIT|END|ABORT|BEGIN|START\s+TRANSACTION|ROLLBACK(?!\s+(?:WORK\s+|TRANSACTION\s+)?TO\b)"
    r"|SET\s+(?:SESSION\s+|GLOBAL\s+|LOCAL\s+|@@(?:SESSION\.|LOCAL\.)?)?AUTOCOMMIT\b"
    r"|PREPARE\s+TRANSACTION\b|(?:RELEASE\s+|ROLLBACK\s+TO\s+)?SAVEPOINT\s+afterparty_task\b)",
    re.IGNORECASE)
# The body of a trigger, procedure or function created in one statement (SQLite's and MySQL's
# CREATE TRIGGER ... BEGIN ...; END, PostgreSQL's BEGIN ATOMIC): its BEGIN and END are no
# transaction control.
_COMPOUND_BODY = re.compile(r"^(\s*CREATE\b[^;]*?)\bBEGIN\b.*\bEND\b", re.IGNORECASE | re.DOTALL)
_LITERALS = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|(\$[A-Za-z_0-9]*\$).*?\1|--[^\n]*|/\*.*?\*/", re.DOTALL)
REFUSED_SQL = (
    "{what} is not allowed: afterparty owns the task's transaction and commits "
    "the task's work together with its success record when the task returns; raise an "
    "exception to roll the work back")
# sqlite3's executescript() commits the open transaction before it runs the script.
REFUSED_SCRIPT = REFUSED_SQL.format(
    what="ctx.db.executescript() (it commits the open transaction first; run each statement "
         "with ctx.db.execute)")


# The one parameter style of ctx.db.execute/query on every backend: %s (and %(name)s with a
# dict), as psycopg, PyMySQL and Django use; sqlite3 takes ? and :name, so it is translated there.
_FORMAT_PLACEHOLDERS = re.compile(r"%\((\w+)\)s|%([s%])")


def _to_qmark(sql: Any) -> Any:
    """``%s`` -> ``?``, ``%(name)s`` -> ``:name``, ``%%`` -> ``%`` for sqlite3."""
    if not isinstance(sql, str):
        return sql

    def swap(match: re.Match[str]) -> str:
        if match.group(1):
            return ":" + match.group(1)
        return "?" if match.group(2) == "s" else "%"

    return _FORMAT_PLACEHOLDERS.sub(swap, sql)


def _is_sqlite3(connection: Any) -> bool:
    import sqlite3

    return isinstance(connection, sqlite3.Connection)


def refuse_transaction_control(sql: object) -> None:
    """Raise TransactionOwnedError when a statement would end the runner's transaction."""
    text = _sql_text(sql)
    if text is None:
        return
    match = _ENDS_TRANSACTION.search(_COMPOUND_BODY.sub(r"\1", _LITERALS.sub(" ", text)))
    if match is not None:
        statement = match.group(0).strip(" ;\n\t")
        raise TransactionOwnedError(REFUSED_SQL.format(what=f"{statement!r} through ctx.db"))


def _sql_text(sql: object) -> str | None:
    """The text of a statement as a driver takes it: str, bytes (psycopg, PyMySQL), a psycopg
    ``sql.Composable`` or a SQLAlchemy ``text()``."""
    if isinstance(sql, str):
        return sql
    if isinstance(sql, (bytes, bytearray, memoryview)):
        return bytes(sql).decode("utf-8", "replace")
    if hasattr(sql, "as_string"):
        try:
            text = sql.as_string(None)
        except Exception:  # a composition only its connection can render: the driver will say
            return None
        return text if isinstance(text, str) else None
    text = getattr(sql, "text", None)
    return text if isinstance(text, str) else None


class TaskCursor:
    """A driver cursor whose statements may not end the runner's transaction."""

    def __init__(self, cursor: Any, connection: TaskConnection | None = None) -> None:
        self._cursor = cursor
        self._connection = connection

    @property
    def connection(self) -> Any:
        """The connection as the task has it: ``cursor.connection.commit()`` is refused too."""
        return self._connection if self._connection is not None else self._cursor.connection

    def execute(self, sql: Any, *args: Any, **kwargs: Any) -> Any:
        refuse_transaction_control(sql)
        if args and args[0] is None and not kwargs:
            args = ()  # sqlite3 refuses None for "no parameters"; the others take it
        return self._cursor.execute(self._translated(sql, args or kwargs), *args, **kwargs)

    def executemany(self, sql: Any, *args: Any, **kwargs: Any) -> Any:
        refuse_transaction_control(sql)
        return self._cursor.executemany(self._translated(sql, args or kwargs), *args, **kwargs)

    def _translated(self, sql: Any, params: object) -> Any:
        """The statement in the driver's placeholders: ``%s`` works on sqlite3 too. Without
        parameters no driver reads placeholders, so the text is left alone."""
        if params and _is_sqlite3(getattr(self._cursor, "connection", None)):
            return _to_qmark(sql)
        return sql

    def executescript(self, *args: Any, **kwargs: Any) -> Any:
        raise TransactionOwnedError(REFUSED_SCRIPT)

    def __enter__(self) -> TaskCursor:
        self._cursor.__enter__()
        return self

    def __exit__(self, *exc: object) -> Any:
        return self._cursor.__exit__(*exc)

    def __iter__(self) -> Any:
        return iter(self._cursor)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


class TaskConnection:
    """The tracking database's connection, lent to a task inside its transaction.

    The runner commits the task's work together with its success record, so ending
    the transaction from the task would break that promise: commit, rollback, begin,
    autocommit and statements such as COMMIT are refused; the rest is the driver's own.
    """

    def __init__(self, connection: Any) -> None:
        object.__setattr__(self, "_connection", connection)

    def commit(self) -> None:
        raise TransactionOwnedError(REFUSED_SQL.format(what="ctx.db.commit()"))

    def rollback(self) -> None:
        raise TransactionOwnedError(
            "ctx.db.rollback() is not allowed: raise an exception to roll back the task's work"
        )

    def begin(self, *args: Any, **kwargs: Any) -> None:
        raise TransactionOwnedError(REFUSED_SQL.format(what="ctx.db.begin()"))

    def set_autocommit(self, *args: Any, **kwargs: Any) -> None:
        raise TransactionOwnedError(REFUSED_SQL.format(what="ctx.db.set_autocommit()"))

    def close(self) -> None:
        raise TransactionOwnedError("ctx.db.close() is not allowed: the runner owns the connection")

    @property
    def autocommit(self) -> Any:
        value = self._connection.autocommit
        if callable(value):  # PyMySQL: autocommit(True) switches it on
            def refuse(*args: Any, **kwargs: Any) -> None:
                raise TransactionOwnedError(REFUSED_SQL.format(what="ctx.db.autocommit()"))
            return refuse
        return value

    def cursor(self, *args: Any, **kwargs: Any) -> TaskCursor:
        return TaskCursor(self._connection.cursor(*args, **kwargs), self)

    def __enter__(self) -> TaskConnection:
        raise TransactionOwnedError(
            "`with ctx.db:` is not allowed: it would commit (sqlite3) or close (psycopg, PyMySQL) "
            "the runner's connection; the task's work already commits when the task returns and "
            "rolls back when it raises")

    def __exit__(self, *exc: object) -> None:
        """Never reached: ``__enter__`` refuses."""

    # ctx.db.execute/query are the portable way to run SQL: %s placeholders on every backend.
    paramstyle = "format"

    @property
    def raw(self) -> Any:
        """The driver's own connection (sqlite3, psycopg, PyMySQL), for what only it offers;
        its placeholders are the driver's (? for sqlite3)."""
        return self._connection

    def execute(self, sql: Any, params: Any = None) -> TaskCursor:
        """Run one statement with ``%s`` placeholders (any backend); returns its cursor."""
        cursor = self.cursor()
        cursor.execute(sql, params)
        return cursor

    def executemany(self, sql: Any, seq_of_params: Any) -> TaskCursor:
        cursor = self.cursor()
        cursor.executemany(sql, seq_of_params)
        return cursor

    def query(self, sql: Any, params: Any = None) -> list[tuple[Any, ...]]:
        """Run one statement with ``%s`` placeholders (any backend); returns its rows as tuples."""
        cursor = self.execute(sql, params)
        try:
            return [tuple(row) for row in cursor.fetchall()] if cursor.description else []
        finally:
            cursor.close()

    def executescript(self, *args: Any, **kwargs: Any) -> Any:
        raise TransactionOwnedError(REFUSED_SCRIPT)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("autocommit", "isolation_level"):
            raise TransactionOwnedError(REFUSED_SQL.format(what=f"setting ctx.db.{name}"))
        setattr(self._connection, name, value)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


class Context:
    """Everything a task body may use; passed as its only argument."""

    def __init__(
        self,
        *,
        version: str,
        name: str,
        env: str,
        release: str | None,
        attempt: int,
        idempotency_key: str,
        db: Any,
        log: logging.Logger,
        notify_urls: list[str],
        open_session: Callable[[], Any] | None = None,
        long_task: LongTask | None = None,
        notices: NoticeHolder | None = None,
    ) -> None:
        self.version = version
        self.name = name
        self.env = env
        self.release = release
        self.attempt = attempt
        self.idempotency_key = idempotency_key
        self.db = db
        self.log = log
        self.notify_urls = notify_urls
        self._open_session = open_session
        self._session: Any = None
        self._long_task = long_task
        self._notices = notices
        #: How many notices this body held (``notify``): they are sent once its attempt succeeds.
        self.notices_held = 0

    def _running(self, what: str) -> LongTask:
        if self._long_task is None:
            raise AfterpartyError(f"ctx.{what} is only available while the task's body runs")
        return self._long_task

    @property
    def checkpoint(self) -> Checkpoint:
        """A small JSON value kept across attempts: ``ctx.checkpoint.get(default)``,
        ``ctx.checkpoint.save(value)``; ``forget`` clears it."""
        from afterparty.long_tasks import Checkpoint

        return Checkpoint(self._running("checkpoint"))

    def batch(self, checkpoint: Any = KEEP_CHECKPOINT,
              pause: float | None = None) -> AbstractContextManager[None]:
        """In an ``atomic=False`` task: the block's ``ctx.db`` work and ``checkpoint`` commit
        together (after the task's ``throttle`` lets it start); then wait ``pause`` seconds.
        Without ``checkpoint=`` the checkpoint is left as it is."""
        return self._running("batch()").batch(self, checkpoint, pause)

    def progress(self, done: float, total: float | None = None, note: str | None = None) -> None:
        """Say how far the task got; ``status``, ``show`` and the console show it at once."""
        if self._long_task is not None:
            self._long_task.progress(done, total, note)

    @property
    def session(self) -> Any:
        """A SQLAlchemy ``Session`` inside the task's transaction: its work commits with the record."""
        if self._session is None:
            if self._open_session is None:
                raise AfterpartyError("ctx.session is only available while the task runs")
            self._session = self._open_session()
        return self._session

    def notify(self, message: str, title: str | None = None, required: bool = True, *,
               now: bool = False, after: object = None) -> None:
        """Tell people ``message`` through the configured notification URLs, once the task has
        succeeded: it is held in the records with the task's work and sent after the commit, so
        that a task that fails tells nobody; its successful attempt tells them once.

        ``after="30m"`` holds it until the release has been live here that long as well
        (``afterparty tick`` sends it then). ``now=True`` sends it at once, as the body runs,
        even if the task fails later; then, when URLs are configured and no service accepted
        it, NotificationError fails the task so that the next run tries again
        (``required=False`` only logs that). A held notice no service accepted is tried again
        by the next ``run`` or ``tick`` (``required=False``: it is given up).
        """
        if now and after is not None:
            raise AfterpartyError("ctx.notify(now=True) sends at once: it cannot also wait "
                                  "(after=...)")
        seconds = None
        if after is not None:
            from afterparty.durations import seconds_of

            seconds = seconds_of(after, "ctx.notify(after=...)")
        if not now and self._notices is not None:
            when = self._notices.hold(message, title, required, "info", seconds)
            self.notices_held += 1
            self.log.info("notice held %s: %s", when, message)
            return
        if seconds is not None:
            raise AfterpartyError("ctx.notify(after=...) is only available while a task's body "
                                  "runs: a condition or a human step's instructions have no "
                                  "attempt to hold it with")
        self._send_now(message, title, required)

    def _send_now(self, message: str, title: str | None, required: bool) -> None:
        from afterparty.notify import NotificationError, send_notification

        problem = send_notification(self.notify_urls, message, title, self.log)
        if problem is not None and required:
            raise NotificationError(
                f"{problem}; the task fails and the next run tries it again "
                "(ctx.notify(..., required=False) goes on without it)")
