"""SQLite, the embedded default: the standard library's driver and an OS lock on the file."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from typing import Any, ClassVar

from afterparty.backends.base import (
    Connection,
    Database,
    Dialect,
    DriverConnection,
    error_chain,
)
from afterparty.backends.locks import DatabaseLock
from afterparty.backends.url import DatabaseURL
from afterparty.errors import DatabaseError

# Where the environment locks lie in the database file: far beyond SQLite's own lock bytes
# (at 1 GiB) and any real file's size.
LOCK_REGION = 1 << 60
# How many SQLite VM steps run between two chances for a signal handler (a few microseconds).
SIGNAL_CHECK_STEPS = 1000


class SQLite3Connection(DriverConnection):
    """A sqlite3 connection in which afterparty opens every transaction itself (BEGIN), so
    that a task's ctx.db work and its success record share one explicit transaction."""

    placeholder = "?"

    def begin(self) -> None:
        self.raw.execute("BEGIN")

    @contextlib.contextmanager
    def transaction_amid_autocommit(self) -> Iterator[None]:
        yield  # every transaction here begins with BEGIN

    def commit(self) -> None:
        if self.raw.in_transaction:
            self.raw.execute("COMMIT")

    def rollback(self) -> None:
        if self.raw.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.raw.execute("ROLLBACK")


class SQLite(Dialect):
    name = "sqlite"
    locking_read = ""
    column_types: ClassVar[dict[str, str]] = {
        "key": "TEXT",
        "text": "TEXT",
        "long_text": "TEXT",
        "integer": "INTEGER",
        "real": "REAL",
        "id": "INTEGER PRIMARY KEY AUTOINCREMENT",
    }

    def connect(self, url: DatabaseURL, connect_timeout: float) -> Connection:
        path = url.database

        def open_session(autocommit: bool) -> Any:
            try:
                connection = sqlite3.connect(path, timeout=30.0, isolation_level=None)
                connection.execute("PRAGMA foreign_keys = ON")
                # Creates the file now (the lock is taken on it) and says if it is no database.
                connection.execute("PRAGMA schema_version")
            except sqlite3.Error as exc:
                raise DatabaseError(
                    f"cannot open SQLite database {path!r}: {exc}; check that its directory exists "
                    "and is writable"
                ) from exc
            return connection

        return SQLite3Connection(open_session, (sqlite3.Error,))

    def prepare(self, database: Database) -> None:
        raw = database.connection.driver_connection
        database.guard(lambda: use_write_ahead_log(raw))

    def describe_error(self, exc: BaseException) -> str:
        message = super().describe_error(exc)
        if "readonly" in message or "read-only" in message:
            return f"{message}: the database file or its directory is read-only"
        return message

    def is_missing_table(self, exc: BaseException) -> bool:
        return any(isinstance(e, sqlite3.OperationalError) and "no such table" in str(e)
                   for e in error_chain(exc))

    def side_session(self, database: Database) -> Database:
        # SQLite has one writer: while the task's transaction writes, a report waits for
        # nothing and is tried again later.
        side = database.twin()
        side.execute("PRAGMA busy_timeout = 0")
        return side

    def lock(self, database: Database, prefix: str) -> DatabaseLock:
        return FileLock(database.url.database, prefix)

    @contextlib.contextmanager
    def signals_reach_statements(self, database: Database) -> Iterator[None]:
        # A long statement holds the main thread inside SQLite, where no Python signal handler
        # can run; a progress callback is Python code, so pending handlers run in it, and one
        # that raises aborts the statement ("interrupted").
        raw = database.connection.driver_connection
        if not isinstance(raw, sqlite3.Connection):
            yield
            return
        raw.set_progress_handler(_let_signal_handlers_run, SIGNAL_CHECK_STEPS)
        try:
            yield
        finally:
            raw.set_progress_handler(None, 0)


def _let_signal_handlers_run() -> int:
    return 0


def use_write_ahead_log(connection: Any) -> None:
    """WAL with synchronous=FULL: every commit is on disk when COMMIT returns, as with
    the rollback journal, for one fsync of the log instead of several of two files."""
    connection.execute("PRAGMA synchronous = FULL")
    (mode,), = connection.execute("PRAGMA journal_mode").fetchall()
    if mode != "wal":
        # A read-only file keeps its journal mode; it can still be read.
        with contextlib.suppress(sqlite3.OperationalError):
            connection.execute("PRAGMA journal_mode = WAL")


class FileLock(DatabaseLock):
    """A lock on the database file itself, one byte of it per table prefix.

    On the file, not beside it: a second path to the same file (a symlink, a relative path)
    reaches the same lock, and no lock file can be deleted or replaced under a live holder.
    The byte lies far beyond the bytes SQLite locks; the lock is an open-file-description
    lock (Linux), which belongs to this descriptor alone and is freed when the holder dies.
    Elsewhere ``flock`` locks the whole file, so that prefixes in one file share one lock.
    The descriptor stays open until the database is closed: closing any descriptor of a file
    drops the process's POSIX locks on it, SQLite's own included.
    """

    def __init__(self, path: str, prefix: str) -> None:
        import hashlib

        self.path = os.path.realpath(path)
        digest = hashlib.blake2b(prefix.encode(), digest_size=3).digest()
        self.offset = LOCK_REGION + int.from_bytes(digest, "big")
        self._fd: int | None = None
        self._held = False

    def try_acquire(self) -> bool:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDWR)  # a write lock needs a writable descriptor
            except OSError as exc:
                raise DatabaseError(f"cannot open SQLite database {self.path!r} for writing: "
                                    f"{exc.strerror}; check that the file is writable") from exc
        try:
            self._lock(exclusive=True)
        except (BlockingIOError, PermissionError):
            return False
        self._held = True
        return True

    def is_free(self) -> bool:
        import fcntl
        import struct

        if not hasattr(fcntl, "F_OFD_GETLK"):
            return False  # flock has no way to ask: nobody is said to be gone
        try:
            fd = os.open(self.path, os.O_RDWR)
        except OSError:
            return False  # cannot tell: nobody is said to be gone
        try:
            asked = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, self.offset, 1, 0)
            answer = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, asked)
        finally:
            os.close(fd)
        return bool(struct.unpack("hhqqi", answer)[0] == fcntl.F_UNLCK)

    def _lock(self, exclusive: bool) -> None:
        import fcntl
        import struct

        assert self._fd is not None
        if not hasattr(fcntl, "F_OFD_SETLK"):
            fcntl.flock(self._fd, (fcntl.LOCK_EX | fcntl.LOCK_NB) if exclusive else fcntl.LOCK_UN)
            return
        kind = fcntl.F_WRLCK if exclusive else fcntl.F_UNLCK
        # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks).
        fcntl.fcntl(self._fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi", kind, os.SEEK_SET, self.offset, 1, 0))

    def is_held(self) -> bool:
        """Held, and the path still names the file we locked (it was not replaced)."""
        if not self._held or self._fd is None:
            return False
        try:
            now = os.stat(self.path)
        except OSError:
            return False
        mine = os.fstat(self._fd)
        return (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)

    def release(self) -> None:
        if self._fd is not None and self._held:
            self._lock(exclusive=False)
        self._held = False

    def close(self) -> None:
        self.release()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def holder(self) -> str | None:
        return None  # the holder wrote who it is into the records (lock.py reads it)


DIALECT = SQLite()
