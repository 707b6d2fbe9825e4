"""MySQL and MariaDB through PyMySQL, with GET_LOCK on a connection of its own."""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from afterparty.backends.base import Backend
from afterparty.errors import DatabaseError

try:
    import pymysql
    import pymysql.constants.CLIENT
except ImportError:  # pragma: no cover - exercised by a test in a venv without the driver
    raise DatabaseError("the MySQL driver is not installed: pip install 'afterparty[mysql]'") from None

NO_SUCH_TABLE = 1146
LOCK_NAME_LIMIT = 64


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
    driver_errors = (pymysql.MySQLError,)
    _lock_connection: Any = None
    _lock_name: str | None = None

    def _open(self, autocommit: bool) -> Any:
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
        if isinstance(exc, pymysql.MySQLError) and len(exc.args) == 2:
            return f"{exc.args[1]} (error {exc.args[0]})"
        return super().describe_error(exc)

    def connect(self) -> None:
        self.connection = self._open(autocommit=False)

    def is_missing_table(self, exc: BaseException) -> bool:
        return isinstance(exc, pymysql.MySQLError) and bool(exc.args) and bool(exc.args[0] == NO_SUCH_TABLE)

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
        if self._lock_connection is None:
            self._lock_connection = self._open(autocommit=True)
        with self._lock_connection.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, 0)", (self._lock_name,))
            (got,) = cursor.fetchone()
        return bool(got == 1)

    def release_lock(self) -> None:
        if self._lock_connection is not None:
            try:
                with self._lock_connection.cursor() as cursor:
                    cursor.execute("SELECT RELEASE_ALL_LOCKS()")
                self._lock_connection.close()
            except pymysql.MySQLError:
                pass  # the server releases a dead session's locks itself
            self._lock_connection = None

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
