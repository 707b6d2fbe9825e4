"""SQLite, the embedded default: the standard library's driver and an OS file lock."""

from __future__ import annotations

import contextlib
import sqlite3
from typing import IO, Any, ClassVar

from afterparty.backends.base import Backend, error_chain, holder_identity
from afterparty.errors import DatabaseError


class SQLiteBackend(Backend):
    name = "sqlite"
    column_types: ClassVar[dict[str, str]] = {
        "key": "TEXT",
        "text": "TEXT",
        "long_text": "TEXT",
        "integer": "INTEGER",
        "real": "REAL",
        "id": "INTEGER PRIMARY KEY AUTOINCREMENT",
    }
    placeholder = "?"
    _lock_file: IO[str] | None = None

    @property
    def driver_errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.Error,)

    def connect(self) -> None:
        path = self.url.database
        try:
            # isolation_level=None: afterparty issues BEGIN itself, so that a task's ctx.db
            # work and its success record share one explicit transaction.
            self.connection = sqlite3.connect(path, timeout=30.0, isolation_level=None)
            self.connection.execute("PRAGMA foreign_keys = ON")
            self._use_write_ahead_log()
        except sqlite3.Error as exc:
            raise DatabaseError(
                f"cannot open SQLite database {path!r}: {exc}; check that its directory exists "
                "and is writable"
            ) from exc

    def _use_write_ahead_log(self) -> None:
        """WAL with synchronous=FULL: every commit is on disk when COMMIT returns, as with
        the rollback journal, for one fsync of the log instead of several of two files."""
        self.connection.execute("PRAGMA synchronous = FULL")
        (mode,), = self.connection.execute("PRAGMA journal_mode").fetchall()
        if mode != "wal":
            # A read-only file keeps its journal mode; it can still be read.
            with contextlib.suppress(sqlite3.OperationalError):
                self.connection.execute("PRAGMA journal_mode = WAL")

    def describe_error(self, exc: BaseException) -> str:
        message = super().describe_error(exc)
        if "readonly" in message or "read-only" in message:
            return f"{message}: the database file or its directory is read-only"
        return message

    def is_missing_table(self, exc: BaseException) -> bool:
        return any(isinstance(e, sqlite3.OperationalError) and "no such table" in str(e)
                   for e in error_chain(exc))

    def begin(self) -> None:
        self.execute("BEGIN")

    def commit(self) -> None:
        if self.connection.in_transaction:
            self.execute("COMMIT")

    def rollback(self) -> None:
        if self.connection.in_transaction:
            self.connection.execute("ROLLBACK")

    def lock_path(self, prefix: str) -> str:
        return f"{self.url.database}.{prefix}lock"

    def try_lock(self, prefix: str) -> bool:
        import fcntl

        if self._lock_file is None:
            try:
                self._lock_file = open(self.lock_path(prefix), "a+", encoding="utf-8")  # noqa: SIM115
            except OSError as exc:
                raise DatabaseError(f"cannot create lock file {self.lock_path(prefix)!r}: {exc}") from exc
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self._lock_file.truncate(0)
        self._lock_file.write(holder_identity())
        self._lock_file.flush()
        return True

    def release_lock(self) -> None:
        import fcntl

        if self._lock_file is not None:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def lock_holder(self, prefix: str) -> str | None:
        try:
            with open(self.lock_path(prefix), encoding="utf-8") as fh:
                return fh.read().strip() or None
        except OSError:
            return None

    def close(self) -> None:
        self.release_lock()
        super().close()


BACKEND: Any = SQLiteBackend
