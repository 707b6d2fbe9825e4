"""What every database offers afterparty: a Dialect (its SQL, lock and errors) and a Connection
(how statements reach it: a driver's connection, Django's or a SQLAlchemy engine's), composed
into one Database."""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence

from afterparty.backends.url import DatabaseURL
from afterparty.errors import DatabaseError, UsageError
from afterparty.tuples import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, ClassVar, NoReturn, TypeVar

    T = TypeVar("T")
    Row = tuple[Any, ...]


class MissingTableError(Exception):
    """The records tables do not exist yet (a database afterparty has never written to)."""


class DatabaseLock(ABC):
    """The environment lock as one database keeps it; the server or the OS frees it when
    the holder dies. fencing.py and lock.py drive it (waiting, epoch, checks)."""

    @abstractmethod
    def try_acquire(self) -> bool:
        """Take the lock without waiting; True when this runner now holds it."""

    @abstractmethod
    def is_held(self) -> bool:
        """Whether this runner still holds it (its session is alive and owns the lock)."""

    @abstractmethod
    def release(self) -> None:
        """Give it back (failing is harmless: a closed session's lock is freed anyway)."""

    @abstractmethod
    def holder(self) -> str | None:
        """Who holds it, as far as the database can tell."""

    @abstractmethod
    def is_free(self) -> bool:
        """Whether nobody holds it, asked without taking it (a look must never stand in the way
        of a runner or worker taking it at that moment)."""

    def holding(self) -> int | None:
        """Which holding of the lock this is (a number that changes each time it is taken), when
        this process can tell without asking the database that it has held the lock without a
        break since then, and that the lock still guards this database: an OS lock it holds
        itself (SQLite's file lock). None otherwise: a server's lock may be lost with its
        session, which only the database can tell (in the commit's transaction)."""
        return None

    def guards_commit(self) -> bool:
        """Whether a commit made now still lands in the database this lock guards; asked just
        before each fenced commit, so it costs no round trip. A lock a server keeps for a
        session always does: the session, and so the lock, lives in that one database."""
        return True

    def close(self) -> None:
        """Free what the lock keeps open; called once the database is closed."""
        self.release()


class Connection(ABC):
    """One session with the database, however it was opened.

    SQL given to ``run`` uses ``%s`` markers; each kind turns them into its own.
    """

    #: Exception classes of the driver under this connection, which become DatabaseError.
    driver_errors: tuple[type[BaseException], ...]

    @abstractmethod
    def run(self, sql: str, params: Sequence[Any], read: Callable[[Any], T]) -> T:
        """Execute one statement and ``read`` the result from the cursor (rows, rowcount, id)."""

    @abstractmethod
    def begin(self) -> None:
        """Open a transaction of afterparty's record writes now (where the database has one
        writer, SQLite, it takes the write lock at once)."""

    def begin_task(self) -> None:
        """Open the transaction a task's body runs in, so that the task's own transaction blocks
        become savepoints. A task may run long before it writes, or never: where the database has
        one writer (SQLite), this transaction takes the write lock only at its first write, so
        that the application's writers, other prefixes' runners and progress reports go on
        meanwhile. Elsewhere it is ``begin``."""
        self.begin()

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def rollback(self) -> None:
        """Roll back; a connection that is gone needs nothing (the server rolls back)."""

    @property
    @abstractmethod
    def driver_connection(self) -> Any:
        """The DB-API connection underneath (what a task's ``ctx.db`` lends)."""

    def set_autocommit(self, on: bool) -> None:  # noqa: B027 - most open transactions themselves
        """On: each statement commits by itself (a task with ``atomic=False`` outside its
        batches); off: afterparty opens and ends transactions (the default). Called only between
        transactions."""

    #: Whether ``begin`` opens a real transaction even while autocommit is on: then a batch
    #: needs no switching of autocommit (and saves its round trips).
    begins_amid_autocommit = False

    def transaction_amid_autocommit(self) -> contextlib.AbstractContextManager[None]:
        """Around ``begin()``...``commit()`` while autocommit is on (a long task's batch):
        autocommit is switched off for it, unless ``begin`` opens a real transaction anyway."""
        if self.begins_amid_autocommit:
            return contextlib.nullcontext()
        return self._autocommit_off()

    @contextlib.contextmanager
    def _autocommit_off(self) -> Iterator[None]:
        self.set_autocommit(False)
        try:
            yield
        finally:
            with contextlib.suppress(*self.driver_errors):
                self.set_autocommit(True)

    @contextlib.contextmanager
    def unsynced_commits(self) -> Iterator[None]:
        """Inside (opened between transactions): a commit need not be on disk when it returns,
        where the database can leave it for the next commit that is to carry to disk (SQLite's
        write-ahead log): a crash of the process loses nothing of it, a crash of the machine
        may lose it. Elsewhere every commit is as durable as always."""
        yield

    @abstractmethod
    def twin(self) -> Connection:
        """A second session to the same database in autocommit mode (the lock's own)."""

    @abstractmethod
    def reopen(self) -> None:
        """Drop this session and open a new one (after a statement was cancelled mid-way)."""

    @abstractmethod
    def close(self) -> None: ...

    @contextlib.contextmanager
    def long_statements(self) -> Iterator[None]:
        """While a task runs, its statements may take as long as it needs (no read timeout)."""
        yield

    def orm_session(self) -> Any:
        """An ORM session inside the task's transaction (``ctx.session``)."""
        raise UsageError(
            "ctx.session needs a SQLAlchemy engine: run through `flask afterparty` or pass an "
            "Engine to afterparty.run(database=engine); use ctx.db or your framework's ORM"
        )


class DriverConnection(Connection):
    """A plain DB-API connection opened by afterparty from a URL."""

    placeholder = "%s"

    def __init__(self, open_session: Callable[[bool], Any],
                 driver_errors: tuple[type[BaseException], ...], autocommit: bool = False) -> None:
        self._open_session = open_session
        self.driver_errors = driver_errors
        self._autocommit = autocommit
        self.raw: Any = open_session(autocommit)

    def run(self, sql: str, params: Sequence[Any], read: Callable[[Any], T]) -> T:
        if self.placeholder != "%s":
            sql = sql.replace("%s", self.placeholder)
        try:  # not _explained_errors(): a context manager costs every statement a little
            cursor = self.raw.cursor()
            try:
                cursor.execute(sql, tuple(params))
                return read(cursor)
            finally:
                cursor.close()
        except self.driver_errors as exc:
            self._raise_explained(exc)

    @contextlib.contextmanager
    def _explained_errors(self) -> Iterator[None]:
        try:
            yield
        except self.driver_errors as exc:
            self._raise_explained(exc)

    def _raise_explained(self, exc: BaseException) -> NoReturn:
        explained = self.explain(exc)
        if explained is exc:
            raise exc
        raise explained from exc

    def explain(self, exc: BaseException) -> BaseException:
        """The error to report for a driver's error (a driver may say too little)."""
        return exc

    #: Autocommit switched on by ``set_autocommit`` (a long task's body).
    _statements_commit = False

    def begin(self) -> None:
        """Most drivers open a transaction with the first statement; with autocommit on (a long
        task's batch) it is opened explicitly."""
        if self._statements_commit:
            with self._explained_errors():
                self._begin_explicitly()

    def _begin_explicitly(self) -> None:
        cursor = self.raw.cursor()
        try:
            cursor.execute("BEGIN")
        finally:
            cursor.close()

    begins_amid_autocommit = True  # ``begin`` opens one (BEGIN) and the driver's commit ends it

    def commit(self) -> None:
        with self._explained_errors():
            self.raw.commit()

    def rollback(self) -> None:
        with contextlib.suppress(*self.driver_errors):
            self.raw.rollback()

    @property
    def driver_connection(self) -> Any:
        return self.raw

    def set_autocommit(self, on: bool) -> None:
        with self._explained_errors():
            self._switch_autocommit(on)
        self._statements_commit = on

    def _switch_autocommit(self, on: bool) -> None:
        """The driver's own way (sqlite3 opened with ``isolation_level=None`` needs none)."""

    def twin(self) -> Connection:
        return type(self)(self._open_session, self.driver_errors, autocommit=True)

    def reopen(self) -> None:
        self.close()
        self.raw = self._open_session(self._autocommit)
        self._statements_commit = self._autocommit

    def close(self) -> None:
        with contextlib.suppress(*self.driver_errors, OSError):
            self.raw.close()


class Dialect(ABC):
    """What differs between databases; nothing outside backends/ asks which database it is."""

    name: ClassVar[str]
    #: Column types for the records tables, by role; see recorder.TABLES.
    column_types: ClassVar[dict[str, str]]
    #: Appended to each CREATE TABLE of the records (MySQL: the character set).
    table_options: ClassVar[str] = ""
    #: Appended to a SELECT that must read the newest committed row and lock it until the
    #: transaction ends (the lock fence); SQLite's single writer needs nothing.
    locking_read: ClassVar[str] = " FOR UPDATE"
    #: Appended to an INSERT into a records table keyed by ``version``: it inserts nothing where
    #: a row of that version exists (its row count says which). None where the database has no
    #: such clause that ignores nothing else (MySQL's INSERT IGNORE ignores every error).
    unless_version_exists: ClassVar[str | None] = " ON CONFLICT (version) DO NOTHING"
    #: DDL commits the open transaction by itself (MySQL/MariaDB): a task that runs it is
    #: not atomic, and that is not the task's fault.
    ddl_commits_implicitly: ClassVar[bool] = False

    @abstractmethod
    def connect(self, url: DatabaseURL, connect_timeout: float) -> Connection:
        """Open afterparty's own connection from a URL; DatabaseError saying why if unable."""

    @abstractmethod
    def is_missing_table(self, exc: BaseException) -> bool:
        """Whether a driver error means that a table does not exist."""

    def is_missing_database(self, exc: BaseException) -> bool:
        """Whether a connect error is the server saying that the database does not exist (a
        mistyped name): trying again cannot change that, so nobody waits for the timeout."""
        return False

    @abstractmethod
    def lock(self, database: Database, prefix: str) -> DatabaseLock:
        """The environment lock of the records under ``prefix``."""

    @abstractmethod
    def place(self, database: Database) -> str:
        """Where the records physically are: an identity of the database this session reaches
        that a copy of its data does not carry (a restored backup, a staging clone, a SQLite
        file baked into an image), so that two sessions can tell whether they write to the same
        database, whatever the records say about themselves. Equal strings, same database.

        Call it between transactions: it ends the read it makes."""

    def prepare(self, database: Database) -> None:  # noqa: B027 - most need nothing
        """Set up a new session, whatever kind of connection it is on."""

    def describe_error(self, exc: BaseException) -> str:
        """A one-line reason for a driver error."""
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__

    def side_session(self, database: Database) -> Database:
        """A second session for writes that must never wait for the task's own transaction
        (progress reports): where they would wait, they fail at once instead."""
        return database.twin()

    def read_only_reason(self, database: Database) -> str | None:
        """Why the database cannot be written to, if it cannot (a standby, a read-only server)."""
        return None

    def insert_returning_id(self, database: Database, sql: str, params: Sequence[Any]) -> int:
        """Run an INSERT into a table with an ``id`` column and return the new row's id."""
        return database.run(sql, params, lambda cursor: int(cursor.lastrowid))

    def ensure_index(self, database: Database, table: str, index: str, column: str) -> None:
        """Create an index unless it exists (schema creation may have been cut short)."""
        database.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {table} ({column})")

    def cancel_statement(self, database: Database) -> bool:
        """Stop a statement the task's session may still be running (a signal or timeout came
        mid-statement); True when the session must be reopened before it is used again."""
        return False

    @contextlib.contextmanager
    def signals_reach_statements(self, database: Database) -> Iterator[None]:
        """Let a signal handler run while a long statement runs (SQLite holds the thread)."""
        yield


class Database:
    """One environment's database: a Dialect speaking over a Connection."""

    def __init__(self, url: DatabaseURL, dialect: Dialect, connection: Connection) -> None:
        self.url = url
        self.dialect = dialect
        self.connection = connection
        #: A transaction afterparty opened (``begin``) is open: reads do not end it.
        self.in_transaction = False

    @classmethod
    def prepared(cls, url: DatabaseURL, dialect: Dialect, connection: Connection) -> Database:
        """The database over a connection of any kind, set up as its dialect wants."""
        database = cls(url, dialect, connection)
        dialect.prepare(database)
        return database

    def reopen(self) -> None:
        """A new session in place of this one (after a statement was cancelled mid-way)."""
        self.in_transaction = False
        self.guard(self.connection.reopen)
        self.dialect.prepare(self)

    def run(self, sql: str, params: Sequence[Any], read: Callable[[Any], T]) -> T:
        """Run one statement, turning driver errors into MissingTableError or DatabaseError."""
        return self.guard(lambda: self.connection.run(sql, params, read))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement and return its rows."""
        return self.run(sql, params, _rows)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement and return how many rows it matched."""
        return self.run(sql, params, _rowcount)

    def insert_returning_id(self, sql: str, params: Sequence[Any]) -> int:
        return self.dialect.insert_returning_id(self, sql, params)

    def guard(self, action: Callable[[], T]) -> T:
        try:
            return action()
        except self.connection.driver_errors as exc:
            if self.dialect.is_missing_table(exc):
                self.rollback()
                raise MissingTableError(str(exc)) from exc
            raise DatabaseError(f"database {self.url.where}: {self.describe(exc)}") from exc

    def describe(self, exc: BaseException) -> str:
        """A driver error in one line, never with the password."""
        reason = self.dialect.describe_error(exc)
        return reason.replace(self.url.password, "***") if self.url.password else reason

    def begin(self) -> None:
        self.guard(self.connection.begin)
        self.in_transaction = True

    def commit(self) -> None:
        try:
            self.guard(self.connection.commit)
        finally:
            self.in_transaction = False

    def rollback(self) -> None:
        self.in_transaction = False
        self.connection.rollback()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together, or nothing does."""
        self.begin()
        try:
            yield
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def begin_task(self) -> None:
        """Open the transaction a task's body runs in (see Connection.begin_task)."""
        self.guard(self.connection.begin_task)
        self.in_transaction = True

    def twin(self) -> Database:
        """A second session (autocommit), for the lock and for cancelling statements."""
        return Database(self.url, self.dialect, self.guard(self.connection.twin))

    def read_only_reason(self) -> str | None:
        return self.dialect.read_only_reason(self)

    def lock(self, prefix: str) -> DatabaseLock:
        return self.dialect.lock(self, prefix)

    def close(self) -> None:
        self.connection.close()


def _rows(cursor: Any) -> list[Row]:
    """The rows as a list of tuples; the drivers' own are (PyMySQL's in a tuple), and are not
    copied one by one: the no-op look reads ten thousand."""
    rows = cursor.fetchall()
    if rows and type(rows[0]) is not tuple:
        return [tuple(row) for row in rows]
    return rows if type(rows) is list else list(rows)


def _rowcount(cursor: Any) -> int:
    return int(cursor.rowcount)


def error_chain(exc: BaseException | None) -> Iterator[BaseException]:
    """An error and the errors it was raised from: frameworks wrap the driver's error."""
    while exc is not None:
        yield exc
        exc = exc.__cause__


def connect_with_retry(connect: Callable[[], T], is_retryable: Callable[[BaseException], bool],
                       timeout: float) -> T:
    """Call ``connect`` until it succeeds or ``timeout`` seconds pass (servers restart)."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        try:
            return connect()
        except Exception as exc:
            remaining = deadline - time.monotonic()
            if not is_retryable(exc) or remaining <= 0:
                raise
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 2.0)


def open_with_retry(url: DatabaseURL, product: str, default_port: int, connect_timeout: float,
                    connect: Callable[[], T], is_retryable: Callable[[BaseException], bool],
                    errors: tuple[type[BaseException], ...], describe: Callable[[BaseException], str]) -> T:
    """Connect, retrying for ``connect_timeout`` seconds what ``is_retryable``; then one
    DatabaseError line."""
    try:
        return connect_with_retry(connect, is_retryable, connect_timeout)
    except errors as exc:
        reason = describe(exc)
        if url.password:
            reason = reason.replace(url.password, "***")
        user = f", user {url.username!r}" if url.username else ""
        waited = f" within {connect_timeout:g} s" if is_retryable(exc) else ""
        raise DatabaseError(
            f"cannot connect to {product} at {url.host or 'localhost'}:{url.port or default_port} "
            f"(database {url.database!r}{user}){waited}: {reason}; "
            "check the URL, the server and the credentials"
        ) from None
