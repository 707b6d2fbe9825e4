"""SQLite, the embedded default: the standard library's driver and an OS lock on the file."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence

from afterparty.backends.base import (
    Connection,
    Database,
    DatabaseLock,
    Dialect,
    DriverConnection,
    error_chain,
)
from afterparty.backends.url import DatabaseURL
from afterparty.errors import ConfigError, DatabaseError
from afterparty.tuples import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, ClassVar, TypeVar

    T = TypeVar("T")

# Where the environment locks lie in the database file: far beyond SQLite's own lock bytes
# (at 1 GiB) and any real file's size.
LOCK_REGION = 1 << 60
# How many SQLite VM steps run between two chances for a signal handler (a few microseconds).
SIGNAL_CHECK_STEPS = 1000
# How long a writer waits for another one by default (``?timeout=SECONDS`` in the URL).
DEFAULT_BUSY_TIMEOUT = 30.0
# How often a waiting writer tries the write lock again. SQLite's own busy handler sleeps up to
# 100 ms between tries, and a writer that begins its next transaction as soon as it commits
# frees the lock for microseconds: tried that rarely, the lock is never caught free.
TURN_POLL = 0.0002
# SQLite's write lock in WAL mode: a POSIX lock on this byte of the "-shm" file.
WAL_WRITE_LOCK_BYTE = 120
# SQLITE_BUSY_SNAPSHOT, the extended result code of a write refused for a stale read.
SQLITE_BUSY_SNAPSHOT = 517
# Statements that never wait for the write lock (a read in WAL mode, a savepoint), which
# SQLite's own busy handler may wait for when they wait at all; and statements that take it.
_NEVER_WAIT_FOR_WRITERS = ("SELECT", "SAVEPOINT", "RELEASE", "ROLLBACK TO")
_WRITES = ("UPDATE", "INSERT", "DELETE")


class SQLite3Connection(DriverConnection):
    """A sqlite3 connection in which afterparty opens every transaction itself, so that a
    task's ctx.db work and its success record share one explicit transaction.

    A transaction of record writes begins with BEGIN IMMEDIATE: it takes the database's one
    write lock first, waiting for other writers. A deferred BEGIN that reads and then writes
    is refused at once in WAL mode when another writer committed in between ("database is
    locked"), whatever the busy timeout. A task's transaction begins deferred (begin_task).
    """

    placeholder = "?"

    def __init__(self, open_session: Callable[[bool], Any],
                 driver_errors: tuple[type[BaseException], ...], autocommit: bool = False,
                 *, path: str = "", patience: float = DEFAULT_BUSY_TIMEOUT) -> None:
        super().__init__(open_session, driver_errors, autocommit)
        self.path = path
        #: Seconds to wait for another writer's transaction to end; 0: fail at once.
        self.patience = patience
        self._patient = f"PRAGMA busy_timeout = {int(patience * 1000)}"  # gives the wait back

    def twin(self) -> Connection:
        return type(self)(self._open_session, self.driver_errors, autocommit=True,
                          path=self.path, patience=self.patience)

    #: The open transaction holds the write lock (begun IMMEDIATE): no statement waits.
    _writing = False

    def run(self, sql: str, params: Sequence[Any], read: Callable[[Any], T]) -> T:
        if sql.startswith(_NEVER_WAIT_FOR_WRITERS) or (self._writing and self.raw.in_transaction):
            return super().run(sql, params, read)
        # Outside a transaction, or in a task's that has not written yet: a statement refused
        # for the write lock did nothing, and is tried again.
        done = self._in_turn(lambda: super(SQLite3Connection, self).run(sql, params, read))
        if sql.startswith(_WRITES) and self.raw.in_transaction:
            self._writing = True  # the write lock is this transaction's until it ends
        return done

    def begin(self) -> None:
        try:  # as _explained_errors() does, without a context manager: a batch begins here
            self._in_turn(self._begin_immediate)
        except self.driver_errors as exc:
            self._raise_explained(exc)
        self._writing = True

    def _begin_immediate(self) -> None:
        self.raw.execute("BEGIN IMMEDIATE")

    def begin_task(self) -> None:
        with self._explained_errors():
            self.raw.execute("BEGIN")
        self._writing = False

    def _in_turn(self, action: Callable[[], T]) -> T:
        """Run ``action`` (a statement outside a transaction, or BEGIN IMMEDIATE) once no other
        writer holds the write lock, trying it every TURN_POLL seconds for ``patience`` seconds
        (SQLite's own busy handler would try too rarely; see TURN_POLL)."""
        if not self.patience:
            return action()
        # A batch of a backfill begins here thousands of times: no context manager, and the
        # deadline is reckoned only once the lock was found busy.
        self.raw.execute("PRAGMA busy_timeout = 0")
        try:
            deadline = None
            while True:
                try:
                    return action()
                except sqlite3.OperationalError as exc:
                    if not is_busy(exc):
                        raise
                    if is_stale_snapshot(exc):
                        raise sqlite3.OperationalError(
                            "database is locked: another writer committed after this transaction "
                            "read, so SQLite refuses it any write (waiting cannot help); run again"
                        ) from exc
                    if deadline is None:
                        deadline = time.monotonic() + self.patience
                    elif time.monotonic() >= deadline:
                        raise self._still_locked() from exc
                time.sleep(TURN_POLL)
        finally:
            try:  # noqa: SIM105 - contextlib.suppress costs each batch a context manager
                self.raw.execute(self._patient)
            except sqlite3.Error:
                pass

    def _still_locked(self) -> sqlite3.OperationalError:
        holder = write_lock_holder(self.path)
        by = f" ({holder})" if holder else ""
        return sqlite3.OperationalError(
            f"the database file stayed locked by another writer for {self.patience:g} s{by}; "
            "afterparty writes between that writer's transactions: make it commit in shorter "
            "ones, deploy when it is done, or wait longer with ?timeout=SECONDS in the database URL")

    begins_amid_autocommit = True  # every transaction here begins with BEGIN IMMEDIATE

    #: Whether the database file is in write-ahead-log mode (asked once).
    _wal: bool | None = None

    @contextlib.contextmanager
    def unsynced_commits(self) -> Iterator[None]:
        # synchronous=NORMAL in WAL mode: a commit is in the log (the OS keeps it if the process
        # dies) and goes to disk with the next FULL commit's fsync, which syncs the whole log.
        # Only in WAL mode: with a rollback journal, NORMAL risks more than the last commits.
        if self._wal is None:
            (mode,), = self.raw.execute("PRAGMA journal_mode").fetchall()
            self._wal = str(mode).lower() == "wal"
        if not self._wal or self.raw.in_transaction:  # changed only between transactions
            yield
            return
        self.raw.execute("PRAGMA synchronous = NORMAL")
        try:
            yield
        finally:
            with contextlib.suppress(sqlite3.Error):
                self.raw.execute("PRAGMA synchronous = FULL")

    def commit(self) -> None:
        self._writing = False
        if self.raw.in_transaction:
            self.raw.execute("COMMIT")

    def rollback(self) -> None:
        self._writing = False
        if self.raw.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.raw.execute("ROLLBACK")


def is_busy(exc: BaseException) -> bool:
    """Whether SQLite refused a statement because another connection holds the lock it needs."""
    return str(exc).startswith("database is locked")


def is_stale_snapshot(exc: BaseException) -> bool:
    """Whether a write was refused because another writer committed after this transaction
    read: waiting cannot help (SQLite says so from Python 3.11 on; before, it is waited out)."""
    return getattr(exc, "sqlite_errorcode", None) == SQLITE_BUSY_SNAPSHOT


def write_lock_holder(path: str) -> str | None:
    """Who holds SQLite's write lock on the database file, where the OS tells (Linux's
    /proc/locks; in WAL mode the lock is a POSIX lock on one byte of the "-shm" file)."""
    try:
        shm = os.stat(f"{os.path.realpath(path)}-shm")
        with open("/proc/locks") as file:
            locks = file.read().splitlines()
    except OSError:
        return None
    where = [f"{os.major(shm.st_dev):02x}:{os.minor(shm.st_dev):02x}:{shm.st_ino}",
             str(WAL_WRITE_LOCK_BYTE), str(WAL_WRITE_LOCK_BYTE)]
    for line in locks:
        # "1: POSIX  ADVISORY  WRITE 22107 fe:00:2146691 120 120" (a waiter's line has "->")
        fields = line.split()
        if fields[1:4] == ["POSIX", "ADVISORY", "WRITE"] and fields[5:8] == where:
            return describe_process(int(fields[4]))
    return None


def describe_process(pid: int) -> str:
    """A process as ps would show it: its pid and command line (shortened)."""
    if pid == os.getpid():
        return f"pid {pid}, this process"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            # One line: an argument may hold newlines (``python -c "..."``).
            command = " ".join(file.read().replace(b"\0", b" ").decode(errors="replace").split())
    except OSError:
        return f"pid {pid}"
    return f"pid {pid}: {command[:60]}{'...' if len(command) > 60 else ''}" if command else f"pid {pid}"


class SQLite(Dialect):
    name = "sqlite"
    locking_read = ""
    # An upsert clause from SQLite 3.24 on; before it, only INSERT OR IGNORE, which ignores more.
    unless_version_exists = (" ON CONFLICT (version) DO NOTHING"
                             if sqlite3.sqlite_version_info >= (3, 24) else None)
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
        patience = busy_timeout(url)

        def open_session(autocommit: bool) -> Any:
            try:
                connection = sqlite3.connect(path, timeout=patience, isolation_level=None)
                connection.execute("PRAGMA foreign_keys = ON")
                # Creates the file now (the lock is taken on it) and says if it is no database.
                connection.execute("PRAGMA schema_version")
            except sqlite3.Error as exc:
                raise DatabaseError(
                    f"cannot open SQLite database {path!r}: {exc}; check that its directory exists "
                    "and is writable"
                ) from exc
            return connection

        return SQLite3Connection(open_session, (sqlite3.Error,), path=path, patience=patience)

    def prepare(self, database: Database) -> None:
        try:
            refuse_hard_links(database.url.database)
        except DatabaseError:
            database.close()
            raise
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
        if isinstance(side.connection, SQLite3Connection):
            side.connection.patience = 0.0
        side.execute("PRAGMA busy_timeout = 0")
        return side

    def lock(self, database: Database, prefix: str) -> DatabaseLock:
        return FileLock(database.url.database, prefix)

    def place(self, database: Database) -> str:
        """The device and inode of the database file its path names now. A copy is another
        file; a symlink or a relative path to the same file is the same place (a second hard
        link is refused on opening). Only meaningful on one machine: SQLite is never shared
        between machines safely anyway."""
        path = database.url.database
        identity = file_identity(path)
        if identity is None:
            raise DatabaseError(f"the SQLite database {os.path.abspath(path)} is gone (deleted or "
                                "renamed while afterparty used it); check the database URL")
        device, inode = identity
        return f"sqlite:{device}:{inode}"

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


def busy_timeout(url: DatabaseURL) -> float:
    """Seconds a writer waits for another: ``?timeout=`` in the URL (SQLAlchemy's spelling for
    pysqlite), else DEFAULT_BUSY_TIMEOUT."""
    given = url.query.get("timeout")
    if given is None:
        return DEFAULT_BUSY_TIMEOUT
    try:
        seconds = float(given)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 1e6:
        raise ConfigError(f"{url.redacted}: timeout={given!r} is not a number of seconds; "
                          "use for example ?timeout=60")
    return seconds


def _let_signal_handlers_run() -> int:
    return 0


def file_identity(path: str) -> tuple[int, int] | None:
    """The device and inode of the file a path names now (following symlinks); None if none."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def refuse_hard_links(path: str) -> None:
    """One database file, one name: SQLite keeps the write-ahead log beside the path it was
    opened by, so each hard link would have a log of its own. A runner through one name would
    not see what one through the other committed, and a log replayed later would undo it."""
    try:
        links = os.stat(path).st_nlink
    except OSError:
        return  # opening it said what is wrong
    if links > 1:
        raise DatabaseError(
            f"the SQLite database {path} has {links} hard links: SQLite keeps its write-ahead log "
            "beside one path, so two paths would see two databases; use one path (a symlink is "
            f"fine) and remove the other links (find them with: find / -xdev -samefile {path})")


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
        #: The database's name as configured, followed anew at each check (a symlink may move).
        self.named = os.path.abspath(path)
        digest = hashlib.blake2b(prefix.encode(), digest_size=3).digest()
        self.offset = LOCK_REGION + int.from_bytes(digest, "big")
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._held = False
        #: How many times this lock was taken (``holding``).
        self._takings = 0

    def try_acquire(self) -> bool:
        if self._fd is None:
            try:
                self._open(os.O_RDWR)  # a write lock needs a writable descriptor
            except OSError as exc:
                raise DatabaseError(f"cannot open SQLite database {self.path!r} for writing: "
                                    f"{exc.strerror}; check that the file is writable") from exc
        try:
            self._lock(exclusive=True)
        except (BlockingIOError, PermissionError):
            return False
        self._held = True
        self._takings += 1
        return True

    def holding(self) -> int | None:
        # Only this descriptor's release (or its closing) ends an OFD or flock lock: held since
        # it was taken, no other runner or worker can have taken it, nor moved its epoch on.
        return self._takings if self._held and self.guards_commit() else None

    def is_free(self) -> bool:
        import fcntl
        import struct

        if not hasattr(fcntl, "F_OFD_GETLK"):
            return False  # flock has no way to ask: nobody is said to be gone
        fd = self._fd
        if fd is None:
            # Kept open until close(), after the database: closing a descriptor of the file
            # would drop this process's POSIX locks on it, SQLite's own included.
            try:
                fd = self._open(os.O_RDONLY)
            except OSError:
                return False  # cannot tell: nobody is said to be gone
        asked = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, self.offset, 1, 0)
        answer = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, asked)
        return bool(struct.unpack("hhqqi", answer)[0] == fcntl.F_UNLCK)

    def _open(self, flags: int) -> int:
        self._fd = fd = os.open(self.path, flags)
        mine = os.fstat(fd)
        #: The file the descriptor is on: it never changes, whatever happens to the path.
        self._identity = (mine.st_dev, mine.st_ino)
        return fd

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
        return self._held and self.guards_commit()

    def guards_commit(self) -> bool:
        """Whether the database's path still names the file this lock is on: a file deleted,
        renamed or replaced under a runner (or a symlink moved) would take its commits into a
        file the next runner does not read. One stat, no database round trip."""
        return self._fd is not None and file_identity(self.named) == self._identity

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
