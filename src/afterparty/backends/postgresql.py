"""PostgreSQL: its SQL, a session advisory lock on a session of its own, psycopg 3 connections."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import socket
import time
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from afterparty.backends.base import (
    Connection,
    Database,
    DatabaseLock,
    Dialect,
    DriverConnection,
    error_chain,
    open_with_retry,
)
from afterparty.backends.locks import SessionLock
from afterparty.backends.url import DatabaseURL
from afterparty.errors import DatabaseError

UNDEFINED_TABLE = "42P01"
INVALID_CATALOG_NAME = "3D000"
# libpq keeps no SQLSTATE for a refused connection: only the server's words (lc_messages C/en).
_NO_SUCH_DATABASE = re.compile(r'FATAL:\s+database ".*" does not exist')
# TCP keepalives on every session: a dead peer or a dropped NAT entry is noticed within
# about a minute instead of never.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}


def _psycopg() -> Any:
    """The driver, imported when a connection is opened (Django may bring its own)."""
    try:
        import psycopg
    except ImportError:  # exercised by a test in a venv without the driver
        raise DatabaseError(
            "the PostgreSQL driver is not installed: pip install 'afterparty[postgres]'"
        ) from None
    return psycopg


@functools.cache
def _timed_connection_class(psycopg: Any) -> Any:
    """psycopg's Connection, with a read timeout: psycopg has none, and a frozen server (or a
    proxy in front of it) would otherwise hang the runner for ever."""

    class NoAnswer(psycopg.OperationalError):  # type: ignore[misc]
        pass

    class TimedConnection(psycopg.Connection):  # type: ignore[misc]
        #: Seconds a statement may go without a byte from the server; None for no limit.
        read_timeout: float | None = None
        #: Why the session was closed, for the errors of later calls on it.
        lost: str | None = None

        def wait(self, gen: Any, *args: Any, **kwargs: Any) -> Any:
            if self.read_timeout is None:
                return super().wait(gen, *args, **kwargs)
            try:
                return super().wait(_answered_within(gen, self.read_timeout, NoAnswer), *args, **kwargs)
            except NoAnswer as exc:
                # Mid-protocol: the session cannot be used again.
                self.lost = str(exc)
                self.pgconn.finish()
                raise

    return TimedConnection


def _answered_within(gen: Any, seconds: float, error: type[Exception]) -> Any:
    """Pass psycopg's waiting generator through, failing once the server has sent nothing for
    ``seconds`` (psycopg's wait wakes the generator with "nothing ready" every 0.1 s)."""
    try:
        state = next(gen)
        silent_since = time.monotonic()
        while True:
            ready = yield state
            if ready:
                silent_since = time.monotonic()
            elif time.monotonic() - silent_since >= seconds:
                raise error(f"no answer from the server within {seconds:g} s")
            state = gen.send(ready)
    except StopIteration as done:
        return done.value


class PsycopgConnection(DriverConnection):
    """A psycopg 3 connection whose statements time out, except a task's own."""

    def _switch_autocommit(self, on: bool) -> None:
        self.raw.autocommit = on

    @contextlib.contextmanager
    def long_statements(self) -> Iterator[None]:
        raw = self.raw
        saved, raw.read_timeout = raw.read_timeout, None
        try:
            yield
        finally:
            raw.read_timeout = saved

    def explain(self, exc: BaseException) -> BaseException:
        """Later calls on a session closed for silence say why, not only "connection is lost"."""
        lost = getattr(self.raw, "lost", None)
        if lost is None or str(exc) == lost:
            return exc
        explained: BaseException = _psycopg().OperationalError(f"{lost} (the session was closed)")
        return explained


class PostgreSQL(Dialect):
    name = "postgresql"
    column_types: ClassVar[dict[str, str]] = {
        "key": "VARCHAR(14)",
        "text": "TEXT",
        "long_text": "TEXT",
        "integer": "INTEGER",
        "real": "DOUBLE PRECISION",
        "id": "BIGSERIAL PRIMARY KEY",
    }

    def connect(self, url: DatabaseURL, connect_timeout: float) -> Connection:
        psycopg = _psycopg()
        options: dict[str, Any] = {
            "host": url.host or "localhost", "port": url.port, "user": url.username,
            "password": url.password, "dbname": url.database,
            # Lets a waiting runner tell who holds the lock (pg_stat_activity).
            "application_name": f"afterparty {socket.gethostname()} pid {os.getpid()}"[:63],
            "connect_timeout": max(2, int(min(10.0, connect_timeout))),
            **KEEPALIVES,
            **url.query,
        }
        options = {k: v for k, v in options.items() if v is not None}

        timed = _timed_connection_class(psycopg)

        def open_session(autocommit: bool) -> Any:
            session = open_with_retry(
                url, "PostgreSQL", 5432, connect_timeout,
                lambda: timed.connect(autocommit=autocommit, **options),
                lambda exc: isinstance(exc, psycopg.OperationalError)
                and not self.is_missing_database(exc),
                (psycopg.Error,), self.describe_error,
            )
            session.read_timeout = max(2.0, connect_timeout)
            return session

        return PsycopgConnection(open_session, (psycopg.Error,))

    def is_missing_database(self, exc: BaseException) -> bool:
        return any(INVALID_CATALOG_NAME in (getattr(e, "sqlstate", None), getattr(e, "pgcode", None))
                   or _NO_SUCH_DATABASE.search(str(e)) for e in error_chain(exc))

    def is_missing_table(self, exc: BaseException) -> bool:
        # psycopg 3 says sqlstate, psycopg2 (under Django) pgcode.
        return any(UNDEFINED_TABLE in (getattr(e, "sqlstate", None), getattr(e, "pgcode", None))
                   for e in error_chain(exc))

    def read_only_reason(self, database: Database) -> str | None:
        (recovery, read_only), = database.query(
            "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')"
        )
        database.rollback()
        if recovery:
            return "the PostgreSQL server is a read-only hot standby; point afterparty at the primary"
        if read_only == "on":
            return "the PostgreSQL session is read-only (default_transaction_read_only is on)"
        return None

    def insert_returning_id(self, database: Database, sql: str, params: Sequence[Any]) -> int:
        (new_id,), = database.query(sql + " RETURNING id", params)
        return int(new_id)

    def lock(self, database: Database, prefix: str) -> DatabaseLock:
        return AdvisoryLock(database, prefix)

    def place(self, database: Database) -> str:
        """The cluster's system identifier (made by initdb; any role may read it unless an
        administrator revoked pg_control_system()) and the database's oid. A dump restored
        anywhere, even into the same cluster, is another place, and so is a database copied
        with CREATE DATABASE ... TEMPLATE. Both survive restarts, a new server address and a
        failover to a replica, so a task queued before them is still recognised after. A
        physical copy of the whole cluster (pg_basebackup, a replica promoted into a staging
        server) keeps both, and looks like the same place. Where the identifier cannot be
        read, the server's address and port as this session reached it stand in: then the
        runner and its workers must reach the server the same way (one address, or all by its
        Unix socket)."""
        try:
            (cluster,), = database.query("SELECT system_identifier::text FROM pg_control_system()")
        except DatabaseError:
            database.rollback()  # the refused statement aborted the transaction
            (cluster,), = database.query(
                "SELECT coalesce(host(inet_server_addr()), 'local') || ':' || "
                "coalesce(inet_server_port(), 0)")
        (oid,), = database.query("SELECT oid FROM pg_database WHERE datname = current_database()")
        database.rollback()
        return f"postgresql:{cluster}/{oid}"

    def cancel_statement(self, database: Database) -> bool:
        raw = database.connection.driver_connection
        info = getattr(raw, "info", None)  # psycopg 3; Django may run psycopg2
        if info is None:
            return True
        if info.transaction_status != _psycopg().pq.TransactionStatus.ACTIVE:
            return False
        with contextlib.suppress(Exception):
            raw.cancel_safe(timeout=5.0)
        return True


class AdvisoryLock(SessionLock):
    """``pg_try_advisory_lock`` under a 64-bit key made of database, schema and prefix."""

    take = "SELECT pg_try_advisory_lock(%s)"
    owns = ("SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND pid = pg_backend_pid() AND classid = %s AND objid = %s AND objsubid = 1")
    give_back = "SELECT pg_advisory_unlock_all()"
    free = ("SELECT count(*) = 0 FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid = %s AND objid = %s AND objsubid = 1")
    # A DBA's idle timeouts must not end the session that holds the lock (the second one
    # exists from PostgreSQL 14 on: set only where the server knows it).
    keep_alive = (
        "SET idle_in_transaction_session_timeout = 0",
        "SELECT set_config('idle_session_timeout', '0', false) FROM pg_settings "
        "WHERE name = 'idle_session_timeout'",
    )

    def __init__(self, database: Database, prefix: str) -> None:
        import hashlib  # only a run that takes the lock needs it (not the no-op look)

        (schema,), = database.query("SELECT current_schema()")
        database.rollback()
        identity = f"afterparty|{database.url.database}|{schema}|{prefix}".encode()
        super().__init__(database, int.from_bytes(hashlib.blake2b(identity, digest_size=8).digest(),
                                                  "big", signed=True))

    def holder(self) -> str | None:
        classid, objid = self._ids()
        rows = self.database.query(
            "SELECT a.application_name, a.client_addr, a.backend_start FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
            "AND l.granted AND l.classid = %s AND l.objid = %s AND l.objsubid = 1",
            (classid, objid),
        )
        self.database.rollback()
        if not rows:
            return None
        application, client, started = rows[0]
        who = application.removeprefix("afterparty ").replace(" pid ", ", pid ") if application else ""
        host = f"host {who}" if who else f"client {client}"
        return f"{host}, since {started:%Y-%m-%d %H:%M:%S %Z}"

    def owns_params(self) -> tuple[object, ...]:
        return self._ids()

    def _ids(self) -> tuple[int, int]:
        """The key as pg_locks shows it: two unsigned 32-bit halves."""
        assert isinstance(self.key, int)
        unsigned = self.key & 0xFFFFFFFFFFFFFFFF
        return unsigned >> 32, unsigned & 0xFFFFFFFF


DIALECT = PostgreSQL()
