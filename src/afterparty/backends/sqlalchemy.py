"""Records on a SQLAlchemy ``Engine``: whichever database it is, and ``ctx.session`` for tasks."""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection as SAConnection
from sqlalchemy import Engine, exc, text
from sqlalchemy.orm import Session

from afterparty.backends import dialect_for, refuse_memory_database
from afterparty.backends.base import Connection, Database, connect_with_retry
from afterparty.backends.url import DatabaseURL
from afterparty.errors import DatabaseError

T = TypeVar("T")
_PLACEHOLDER = re.compile(r"%s")


class EngineConnection(Connection):
    """Runs the records' SQL on a connection of the application's engine.

    ``ctx.session`` is a ``Session`` on that same connection, inside the task's transaction:
    the runner flushes it and commits its work together with the task's success record.
    """

    driver_errors = (exc.SQLAlchemyError,)

    def __init__(self, engine: Engine, connect_timeout: float, autocommit: bool = False) -> None:
        self.engine = engine
        self.connect_timeout = connect_timeout
        self.autocommit = autocommit
        self.sa_connection = self._open()
        self._session: Session | None = None

    def _open(self) -> SAConnection:
        connection = connect_with_retry(self.engine.connect, self.is_retryable, self.connect_timeout)
        if self.autocommit:
            return connection.execution_options(isolation_level="AUTOCOMMIT")
        return connection

    def is_retryable(self, error: BaseException) -> bool:
        """A connect error that a server (re)starting could cause; not a database that is not there."""
        return (isinstance(error, exc.OperationalError)
                and not dialect_for(self.engine.dialect.name).is_missing_database(error))

    def run(self, sql: str, params: Sequence[Any], read: Callable[[Any], T]) -> T:
        numbers = itertools.count()
        statement = text(_PLACEHOLDER.sub(lambda _: f":p{next(numbers)}", sql))
        result = self.sa_connection.execute(
            statement, {f"p{number}": value for number, value in enumerate(params)})
        return read(result)

    def begin(self) -> None:
        # IMMEDIATE on SQLite: a transaction of record writes that read first would be refused
        # at once if another writer committed in between.
        self._begin("BEGIN IMMEDIATE")

    def begin_task(self) -> None:
        self._begin("BEGIN")

    def _begin(self, statement: str) -> None:
        if not self.sa_connection.in_transaction():
            self.sa_connection.begin()
        # pysqlite starts the transaction only at the first write, so the task's SAVEPOINT
        # would start it, and releasing that outermost savepoint would commit the task's work
        # before its record is fenced: start it now, as afterparty's own SQLite connection does.
        if self.engine.dialect.name == "sqlite" and not getattr(self.driver_connection,
                                                                "in_transaction", True):
            self.sa_connection.exec_driver_sql(statement)

    def commit(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            session.flush()
            session.close()
        self.sa_connection.commit()

    def rollback(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            session.close()
        with contextlib.suppress(exc.SQLAlchemyError):
            self.sa_connection.rollback()

    @property
    def driver_connection(self) -> Any:
        # ctx.db: the driver's own connection under the engine's, in the same transaction.
        return self.sa_connection.connection.driver_connection

    def set_autocommit(self, on: bool) -> None:
        level = "AUTOCOMMIT" if on else self.sa_connection.default_isolation_level
        self.sa_connection.execution_options(isolation_level=level)

    def twin(self) -> Connection:
        return EngineConnection(self.engine, self.connect_timeout, autocommit=True)

    def reopen(self) -> None:
        self.rollback()
        with contextlib.suppress(exc.SQLAlchemyError):
            self.sa_connection.invalidate()
            self.sa_connection.close()
        self.sa_connection = self._open()

    def orm_session(self) -> Session:
        if self._session is None:
            self.begin()
            # The session joins the runner's transaction and never ends it: the runner commits.
            self._session = Session(bind=self.sa_connection, join_transaction_mode="rollback_only")
        return self._session

    def close(self) -> None:
        self.rollback()
        with contextlib.suppress(exc.SQLAlchemyError):
            self.sa_connection.close()


def engine_database(engine: Engine, connect_timeout: float = 30.0) -> Database:
    """The records' database on a connection of ``engine``."""
    url = _engine_url(engine)
    dialect = dialect_for(engine.dialect.name)
    try:
        connection = EngineConnection(engine, connect_timeout)
    except exc.SQLAlchemyError as error:
        waited = "" if dialect.is_missing_database(error) else f" within {connect_timeout:g} s"
        raise DatabaseError(
            f"cannot connect to {url.redacted}{waited}: "
            f"{dialect.describe_error(error)}; check the engine's URL, the server and the credentials"
        ) from None
    return Database.prepared(url, dialect, connection)


def _engine_url(engine: Engine) -> DatabaseURL:
    url = engine.url
    name = engine.dialect.name
    database = url.database or ""
    refuse_memory_database(name, database, "the SQLAlchemy engine's database", "use a database file")
    return DatabaseURL(
        backend=name, username=url.username, host=url.host, port=url.port, database=database,
        redacted=url.render_as_string(hide_password=True),
    )
