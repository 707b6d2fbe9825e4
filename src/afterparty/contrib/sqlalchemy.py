"""Records on a SQLAlchemy ``Engine``: the vendor's SQL and lock, and ``ctx.session`` for tasks."""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, exc, text
from sqlalchemy.orm import Session

from afterparty.backends import DatabaseURL
from afterparty.backends.base import Backend, connect_with_retry
from afterparty.errors import ConfigError, DatabaseError
from afterparty.integration import backend_over

T = TypeVar("T")
_PLACEHOLDER = re.compile(r"%s")


class EngineConnection(Backend):
    """Runs the records' SQL on a connection of the application's engine.

    ``ctx.session`` is a ``Session`` on that same connection, inside the task's transaction:
    the runner flushes it and commits its work together with the task's success record.
    """

    def __init__(self, url: DatabaseURL, connect_timeout: float = 30.0,
                 engine: Engine | None = None) -> None:
        super().__init__(url, connect_timeout)
        assert engine is not None
        self.engine = engine
        self.sa_connection: Connection | None = None
        self._session: Session | None = None

    @property
    def driver_errors(self) -> tuple[type[BaseException], ...]:
        return (exc.SQLAlchemyError,)

    def open_connection(self, autocommit: bool) -> Connection:
        try:
            connection = connect_with_retry(
                self.engine.connect, lambda error: isinstance(error, exc.OperationalError),
                self.connect_timeout)
        except exc.SQLAlchemyError as error:
            raise DatabaseError(
                f"cannot connect to {self.url.redacted} within {self.connect_timeout:g} s: "
                f"{self.describe_error(error)}; check the engine's URL, the server and the credentials"
            ) from None
        return connection.execution_options(isolation_level="AUTOCOMMIT") if autocommit else connection

    def connect(self) -> None:
        self.sa_connection = self.open_connection(autocommit=False)
        # ctx.db: the driver's own connection under the engine's, in the same transaction.
        self.connection = self.sa_connection.connection

    def _run(self, sql: str, params: Sequence[Any], read: Callable[[Any], T],
             connection: Any = None) -> T:
        assert self.sa_connection is not None
        numbers = itertools.count()
        statement = text(_PLACEHOLDER.sub(lambda _: f":p{next(numbers)}", sql))
        result = (self.sa_connection if connection is None else connection).execute(
            statement, {f"p{number}": value for number, value in enumerate(params)})
        return read(result)

    def begin(self) -> None:
        assert self.sa_connection is not None
        if not self.sa_connection.in_transaction():
            self.sa_connection.begin()

    def commit(self) -> None:
        assert self.sa_connection is not None
        if self._session is not None:
            session, self._session = self._session, None
            self._guard(session.flush)
            session.close()
        self._guard(self.sa_connection.commit)

    def rollback(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            session.close()
        if self.sa_connection is not None:
            with contextlib.suppress(*self.driver_errors):
                self.sa_connection.rollback()

    def orm_session(self) -> Session:
        if self._session is None:
            self.begin()
            # The session joins the runner's transaction and never ends it: the runner commits.
            self._session = Session(bind=self.sa_connection, join_transaction_mode="rollback_only")
        return self._session

    def close(self) -> None:
        self.release_lock()
        if self.sa_connection is not None:
            with contextlib.suppress(*self.driver_errors):
                self.sa_connection.close()
            self.sa_connection = None


def engine_backend(engine: Engine, connect_timeout: float = 30.0) -> Backend:
    """A connected backend on a connection of ``engine``."""
    backend: Backend = backend_over(EngineConnection, engine.dialect.name)(
        _engine_url(engine), connect_timeout, engine=engine)
    backend.connect()
    return backend


def _engine_url(engine: Engine) -> DatabaseURL:
    url = engine.url
    name = engine.dialect.name
    database = url.database or ""
    if name == "sqlite" and (not database or database == ":memory:" or "mode=memory" in database):
        raise ConfigError(
            "the SQLAlchemy engine's SQLite database is in memory: it would forget what ran; "
            "use a database file"
        )
    return DatabaseURL(
        backend=name, username=url.username, host=url.host, port=url.port, database=database,
        redacted=url.render_as_string(hide_password=True),
    )
