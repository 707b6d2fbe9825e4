"""MySQL and MariaDB through PyMySQL, with GET_LOCK on a connection of its own."""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from afterparty.backends.base import Backend, error_chain
from afterparty.errors import DatabaseError

NO_SUCH_TABLE = 1146
LOCK_NAME_LIMIT = 64


def _pymysql() -> Any:
    """The driver, imported when a connection is opened (Django may bring mysqlclient)."""
    try:
        import pymysql
        import pymysql.constants.CLIENT
    except ImportError:  # exercised by a test in a venv without the driver
        raise DatabaseError("the MySQL driver is not installed: pip install 'afterparty[mysql]'") from None
    return pymysql


class MySQLBackend(Backend):
    name = "mysql"
    column_types: ClassVar[dict[str, str]] = {
        "key": "VARCHAR(14)",
        "text": "TEXT",
        "long_text": "MEDIUMTEXT",  # TEXT holds only 64 KiB of bytes; captured output is 64 KiB of text
        "integer": "INTEGER",
        "real": "DOUBLE",
        "id": "BIGINT AUTO_INCREMENT PRIMARY KEY",
    }
    _lock_name: str | None = None

    @property
    def driver_errors(self) -> tuple[type[BaseException], ...]:
        return (_pymysql().MySQLError,)

    def open_connection(self, autocommit: bool) -> Any:
        pymysql = _pymysql()
        url = self.url
        options: dict[str, Any] = {
            "host": url.host or "localhost", "port": url.port or 3306, "user": url.username,
            "password": url.password or "", "database": url.database, "charset": "utf8mb4",
            "connect_timeout": max(2, int(min(10.0, self.connect_timeout))),
            "autocommit": autocommit,
            # rowcount = rows matched, not rows changed, as the other drivers count.
            "client_flag": pymysql.constants.CLIENT.FOUND_ROWS,
        }
        if url.query.get("unix_socket"):
            options["unix_socket"] = url.query["unix_socket"]
        return self.open_with_retry(
            "MySQL/MariaDB", 3306, lambda: pymysql.connect(**options),
            lambda exc: isinstance(exc, pymysql.OperationalError),
        )

    def describe_error(self, exc: BaseException) -> str:
        # PyMySQL and mysqlclient both raise errors with the arguments (code, message).
        if len(exc.args) == 2 and isinstance(exc.args[0], int):
            return f"{exc.args[1]} (error {exc.args[0]})"
        return super().describe_error(exc)

    def is_missing_table(self, exc: BaseException) -> bool:
        return any(e.args[:1] == (NO_SUCH_TABLE,) for e in error_chain(exc))

    def read_only_reason(self) -> str | None:
        (read_only,), = self.query("SELECT @@GLOBAL.read_only")
        self.rollback()
        if int(read_only):
            return "the MySQL/MariaDB server is read-only (read_only = ON); point afterparty at the primary"
        return None

    def _name(self, prefix: str) -> str:
        """The GET_LOCK name: database and prefix, hashed down when they are long."""
        name = f"afterparty:{self.url.database}:{prefix}"
        if len(name) >= LOCK_NAME_LIMIT:
            digest = hashlib.blake2b(name.encode(), digest_size=8).hexdigest()
            name = f"{name[:LOCK_NAME_LIMIT - 18]}:{digest}"
        return name

    def try_lock(self, prefix: str) -> bool:
        self._lock_name = self._name(prefix)
        (got,), = self.lock_query("SELECT GET_LOCK(%s, 0)", (self._lock_name,))
        return bool(got == 1)

    def release_lock(self) -> None:
        self.close_lock_connection("SELECT RELEASE_ALL_LOCKS()")

    def lock_holder(self, prefix: str) -> str | None:
        rows = self.query(
            "SELECT p.HOST, p.TIME FROM information_schema.PROCESSLIST p "
            "WHERE p.ID = IS_USED_LOCK(%s)", (self._name(prefix),))
        self.rollback()
        if not rows:
            return None
        client, seconds = rows[0]
        return f"client {client}, holding it for {seconds} s"

    def close(self) -> None:
        self.release_lock()
        super().close()


BACKEND: Any = MySQLBackend
