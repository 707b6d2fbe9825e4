"""The small interface every database backend implements: connect, query, transactions, lock."""

from __future__ import annotations

import contextlib
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, TypeVar

from afterparty.backends import DatabaseURL
from afterparty.errors import DatabaseError, UsageError

T = TypeVar("T")


class MissingTableError(Exception):
    """The records tables do not exist yet (a database afterparty has never written to)."""


class Backend(ABC):
    """One connection to the tracking database, plus the environment lock.

    A backend module states its database's SQL and lock; how connections are opened
    (``connect``, ``open_connection``, ``driver_errors``) is all that a framework's
    connection (Django, SQLAlchemy) replaces to reuse them.
    """

    name: ClassVar[str]
    # Column types for the records tables, by role; see recorder.TABLES.
    column_types: ClassVar[dict[str, str]]
    # The driver's parameter marker, for SQL written with %s.
    placeholder: ClassVar[str] = "%s"

    def __init__(self, url: DatabaseURL, connect_timeout: float = 30.0) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self.connection: Any = None
        self._lock_connection: Any = None

    def connect(self) -> None:
        """Open the connection used for records and ``ctx.db``; raise DatabaseError if unable."""
        self.connection = self.open_connection(autocommit=False)

    def open_connection(self, autocommit: bool) -> Any:
        """A new DB-API connection to the database (the lock takes one in autocommit mode)."""
        raise NotImplementedError(f"{self.name} needs no second connection")

    @abstractmethod
    def is_missing_table(self, exc: BaseException) -> bool:
        """Whether a driver error means that a table does not exist."""

    @abstractmethod
    def try_lock(self, prefix: str) -> bool:
        """Take the environment lock without waiting; True when this runner now holds it."""

    @abstractmethod
    def release_lock(self) -> None:
        """Give the environment lock back (the server or OS also does when we die)."""

    @abstractmethod
    def lock_holder(self, prefix: str) -> str | None:
        """Who holds the lock (host, pid, since when), if it can be told."""

    @property
    def driver_errors(self) -> tuple[type[BaseException], ...]:
        """The exception classes of the driver, which become DatabaseError."""
        return ()

    def read_only_reason(self) -> str | None:
        """Why the database cannot be written to, if it cannot (a standby, a read-only server)."""
        return None

    def describe_error(self, exc: BaseException) -> str:
        """A one-line reason for a driver error, to put in a DatabaseError."""
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

    def open_with_retry(self, product: str, default_port: int, connect: Callable[[], T],
                        is_retryable: Callable[[BaseException], bool]) -> T:
        """Connect, retrying for ``connect_timeout`` seconds; then one DatabaseError line."""
        try:
            return connect_with_retry(connect, is_retryable, self.connect_timeout)
        except self.driver_errors as exc:
            url = self.url
            reason = self.describe_error(exc)
            if url.password:
                reason = reason.replace(url.password, "***")
            user = f", user {url.username!r}" if url.username else ""
            raise DatabaseError(
                f"cannot connect to {product} at {url.host or 'localhost'}:{url.port or default_port} "
                f"(database {url.database!r}{user}) within {self.connect_timeout:g} s: {reason}; "
                "check the URL, the server and the credentials"
            ) from None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement and return its rows, translating driver errors."""
        rows: list[tuple[Any, ...]] = self._guard(lambda: self._run(sql, params, _rows))
        return rows

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement and return how many rows it changed."""
        changed: int = self._guard(lambda: self._run(sql, params, _rowcount))
        return changed

    def lock_query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on the lock's own connection (opened in autocommit mode)."""
        if self._lock_connection is None:
            self._lock_connection = self.open_connection(autocommit=True)
        rows: list[tuple[Any, ...]] = self._guard(
            lambda: self._run(sql, params, _rows, connection=self._lock_connection))
        return rows

    def close_lock_connection(self, unlock_sql: str) -> None:
        """Release the locks of the lock's connection and close it."""
        if self._lock_connection is None:
            return
        # Failing is harmless: the server releases a closed or dead session's locks itself.
        with contextlib.suppress(DatabaseError):
            self.lock_query(unlock_sql)
        with contextlib.suppress(*self.driver_errors):
            self._lock_connection.close()
        self._lock_connection = None

    def _run(self, sql: str, params: Sequence[Any], read: Callable[[Any], T],
             connection: Any = None) -> T:
        """Execute on a DB-API cursor and ``read`` the result from it."""
        if self.placeholder != "%s":
            sql = sql.replace("%s", self.placeholder)
        cursor = (self.connection if connection is None else connection).cursor()
        try:
            cursor.execute(sql, tuple(params))
            return read(cursor)
        finally:
            cursor.close()

    def _guard(self, action: Callable[[], T]) -> T:
        try:
            return action()
        except self.driver_errors as exc:
            if self.is_missing_table(exc):
                self.rollback()
                raise MissingTableError(str(exc)) from exc
            raise DatabaseError(f"database {self.url.where}: {self.describe_error(exc)}") from exc

    def insert_returning_id(self, sql: str, params: Sequence[Any]) -> int:
        """Run an INSERT into a table with an ``id`` column and return the new row's id."""
        new_id: int = self._guard(lambda: self._run(sql, params, _lastrowid))
        return new_id

    def begin(self) -> None:  # noqa: B027 - most drivers begin one implicitly
        """Start a transaction (drivers that start one implicitly need nothing)."""

    def commit(self) -> None:
        self._guard(self.connection.commit)

    def rollback(self) -> None:
        # A connection that is gone needs nothing: the server rolls back on its own.
        with contextlib.suppress(*self.driver_errors):
            self.connection.rollback()

    def orm_session(self) -> Any:
        """An ORM session inside the task's transaction (``ctx.session``)."""
        raise UsageError(
            "ctx.session needs a SQLAlchemy engine: run through `flask afterparty` or pass an "
            "Engine to afterparty.run(database=engine); use ctx.db or your framework's ORM"
        )

    def close(self) -> None:
        with contextlib.suppress(*self.driver_errors):
            self.connection.close()


def _rows(cursor: Any) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in cursor.fetchall()]


def _rowcount(cursor: Any) -> int:
    return int(cursor.rowcount)


def _lastrowid(cursor: Any) -> int:
    return int(cursor.lastrowid)


def error_chain(exc: BaseException | None) -> Iterator[BaseException]:
    """An error and the errors it was raised from: frameworks wrap the driver's error."""
    while exc is not None:
        yield exc
        exc = exc.__cause__


def holder_identity() -> str:
    """How this runner describes itself to others waiting for the lock."""
    import socket
    from datetime import datetime, timezone

    since = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"host {socket.gethostname()}, pid {os.getpid()}, since {since}"


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
