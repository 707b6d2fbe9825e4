"""MySQL and MariaDB: their SQL, GET_LOCK on a session of its own, PyMySQL connections."""

from __future__ import annotations

import contextlib
import hashlib
import socket
from collections.abc import Iterator
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

NO_SUCH_TABLE = 1146
BAD_DB_ERROR = 1049  # Unknown database
LOCK_NAME_LIMIT = 64
# A year: the server's longest wait_timeout. The lock's session is idle between its checks.
LOCK_SESSION_WAIT_TIMEOUT = 31536000


def _pymysql() -> Any:
    """The driver, imported when a connection is opened (Django may bring mysqlclient)."""
    try:
        import pymysql
        import pymysql.constants.CLIENT
    except ImportError:  # exercised by a test in a venv without the driver
        raise DatabaseError("the MySQL driver is not installed: pip install 'afterparty[mysql]'") from None
    return pymysql


class PyMySQLConnection(DriverConnection):
    """A PyMySQL connection with read and write timeouts: PyMySQL has none by default, so a
    frozen server would hang the runner for ever."""

    def _switch_autocommit(self, on: bool) -> None:
        self.raw.autocommit(on)

    @contextlib.contextmanager
    def long_statements(self) -> Iterator[None]:
        # PyMySQL applies _read_timeout/_write_timeout before every socket operation.
        saved = self.raw._read_timeout, self.raw._write_timeout
        self.raw._read_timeout = self.raw._write_timeout = None
        try:
            yield
        finally:
            self.raw._read_timeout, self.raw._write_timeout = saved

    #: Why PyMySQL closed this session (a read timeout, a lost connection): every later call
    #: on it fails with an empty ``InterfaceError(0, '')``, which would be the user's only line.
    _lost: str | None = None

    def reopen(self) -> None:
        self._lost = None
        super().reopen()

    def explain(self, exc: BaseException) -> BaseException:
        pymysql = _pymysql()
        if isinstance(exc, pymysql.err.OperationalError) and exc.args[:1] in ((2006,), (2013,)):
            timeout = self.raw._read_timeout
            waited = f": no answer within {timeout:g} s" if "timed out" in str(exc) and timeout else ""
            self._lost = f"{exc.args[1]}{waited}"
            explained: BaseException = pymysql.err.OperationalError(exc.args[0], self._lost)
        elif isinstance(exc, pymysql.err.InterfaceError) and not any(exc.args[1:]):
            reason = self._lost or "the connection to the server was closed"
            explained = pymysql.err.OperationalError(2013, f"{reason} (the session was closed)")
        else:
            explained = exc
        return explained


def _probe_soon(sock: socket.socket) -> None:
    """TCP keepalives as PostgreSQL's sessions have them (PyMySQL turns them on with the
    kernel's timing, a first probe after two hours): a NAT or firewall that drops silent
    connections would otherwise end the lock's session while a long task runs."""
    for option, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, option) and sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


class MySQL(Dialect):
    name = "mysql"
    column_types: ClassVar[dict[str, str]] = {
        "key": "VARCHAR(14)",
        "text": "TEXT",
        "long_text": "MEDIUMTEXT",  # TEXT holds only 64 KiB of bytes; captured output is 64 KiB of text
        "integer": "INTEGER",
        "real": "DOUBLE",
        "id": "BIGINT AUTO_INCREMENT PRIMARY KEY",
    }
    # Whatever the database's default: every character a task prints can be stored.
    table_options = " DEFAULT CHARACTER SET utf8mb4"
    unless_version_exists = None
    ddl_commits_implicitly = True

    def connect(self, url: DatabaseURL, connect_timeout: float) -> Connection:
        pymysql = _pymysql()
        timeout = max(2, int(connect_timeout))
        options: dict[str, Any] = {
            "host": url.host or "localhost", "port": url.port or 3306, "user": url.username,
            "password": url.password or "", "database": url.database, "charset": "utf8mb4",
            "connect_timeout": max(2, int(min(10.0, connect_timeout))),
            "read_timeout": timeout, "write_timeout": timeout,
            # rowcount = rows matched, not rows changed, as the other drivers count.
            "client_flag": pymysql.constants.CLIENT.FOUND_ROWS,
        }
        if url.query.get("unix_socket"):
            options["unix_socket"] = url.query["unix_socket"]

        def open_session(autocommit: bool) -> Any:
            session = open_with_retry(
                url, "MySQL/MariaDB", 3306, connect_timeout,
                lambda: pymysql.connect(autocommit=autocommit, **options),
                lambda exc: isinstance(exc, pymysql.OperationalError)
                and not self.is_missing_database(exc),
                (pymysql.MySQLError,), self.describe_error,
            )
            _probe_soon(session._sock)
            return session

        return PyMySQLConnection(open_session, (pymysql.MySQLError,))

    def describe_error(self, exc: BaseException) -> str:
        # PyMySQL and mysqlclient both raise errors with the arguments (code, message).
        if len(exc.args) == 2 and isinstance(exc.args[0], int):
            return f"{exc.args[1]} (error {exc.args[0]})"
        return super().describe_error(exc)

    def is_missing_database(self, exc: BaseException) -> bool:
        return any(e.args[:1] == (BAD_DB_ERROR,) for e in error_chain(exc))

    def is_missing_table(self, exc: BaseException) -> bool:
        return any(e.args[:1] == (NO_SUCH_TABLE,) for e in error_chain(exc))

    def read_only_reason(self, database: Database) -> str | None:
        (read_only,), = database.query("SELECT @@GLOBAL.read_only")
        database.rollback()
        if int(read_only):
            return "the MySQL/MariaDB server is read-only (read_only = ON); point afterparty at the primary"
        return None

    def ensure_index(self, database: Database, table: str, index: str, column: str) -> None:
        # MySQL has no CREATE INDEX IF NOT EXISTS (MariaDB's form is its own).
        exists = database.query(
            "SELECT 1 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = %s AND INDEX_NAME = %s", (table, index))
        if not exists:
            database.execute(f"CREATE INDEX {index} ON {table} ({column})")

    def lock(self, database: Database, prefix: str) -> DatabaseLock:
        return NamedLock(database, prefix)

    def place(self, database: Database) -> str:
        """The server's UUID and the database's name. MySQL makes the UUID at its first start
        and keeps it in auto.cnf in the data directory: it survives restarts and a new
        address, and a server made from a dump has another one (a data directory copied with
        its auto.cnf keeps it, and looks like the same place). MariaDB has no server UUID: its
        host name and port stand in, which change when the server moves to another host or
        container. A dump restored under another name on the same server is another place."""
        found = database.query("SHOW VARIABLES LIKE 'server_uuid'")
        if found:
            server = str(found[0][1])
        else:
            (host, port), = database.query("SELECT @@hostname, @@port")
            server = f"{host}:{port}"
        (name,), = database.query("SELECT DATABASE()")
        database.rollback()
        return f"mysql:{server}/{name}"

    def cancel_statement(self, database: Database) -> bool:
        # The task's session may be mid-statement: KILL QUERY from another session stops it
        # on the server; the session itself is left mid-packet, so it is reopened.
        thread_id = database.connection.driver_connection.thread_id()
        with contextlib.suppress(DatabaseError):
            other = database.twin()
            try:
                other.execute(f"KILL QUERY {int(thread_id)}")
            finally:
                other.close()
        return True


class NamedLock(SessionLock):
    """``GET_LOCK`` under the name ``afterparty:<database>:<prefix>`` (hashed below 64)."""

    take = "SELECT GET_LOCK(%s, 0)"
    owns = "SELECT IS_USED_LOCK(%s) = CONNECTION_ID()"
    give_back = "SELECT RELEASE_ALL_LOCKS()"
    free = "SELECT IS_FREE_LOCK(%s) = 1"
    keep_alive = (f"SET SESSION wait_timeout = {LOCK_SESSION_WAIT_TIMEOUT}",)

    def __init__(self, database: Database, prefix: str) -> None:
        name = f"afterparty:{database.url.database}:{prefix}"
        if len(name) >= LOCK_NAME_LIMIT:
            digest = hashlib.blake2b(name.encode(), digest_size=8).hexdigest()
            name = f"{name[:LOCK_NAME_LIMIT - 18]}:{digest}"
        super().__init__(database, name)
        self.name = name

    def holder(self) -> str | None:
        rows = self.database.query(
            "SELECT p.HOST, p.TIME FROM information_schema.PROCESSLIST p "
            "WHERE p.ID = IS_USED_LOCK(%s)", (self.name,))
        self.database.rollback()
        if not rows:
            return None
        client, seconds = rows[0]
        return f"client {client}, holding it for {seconds} s"


DIALECT = MySQL()
