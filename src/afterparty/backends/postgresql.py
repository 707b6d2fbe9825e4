"""PostgreSQL through psycopg 3, with a session advisory lock on a connection of its own."""

from __future__ import annotations

import hashlib
import os
import socket
from typing import Any, ClassVar

from afterparty.backends.base import Backend
from afterparty.errors import DatabaseError

try:
    import psycopg
    import psycopg.errors
except ImportError:  # pragma: no cover - exercised by a test in a venv without the driver
    raise DatabaseError(
        "the PostgreSQL driver is not installed: pip install 'afterparty[postgres]'"
    ) from None


class PostgresBackend(Backend):
    name = "postgresql"
    column_types: ClassVar[dict[str, str]] = {
        "key": "VARCHAR(14)",
        "text": "TEXT",
        "long_text": "TEXT",
        "integer": "INTEGER",
        "real": "DOUBLE PRECISION",
        "id": "BIGSERIAL PRIMARY KEY",
    }
    driver_errors = (psycopg.Error,)
    _lock_connection: Any = None
    _lock_key: int | None = None

    def _open(self, autocommit: bool) -> Any:
        url = self.url
        options: dict[str, Any] = {
            "host": url.host or "localhost", "port": url.port, "user": url.username,
            "password": url.password, "dbname": url.database,
            # Lets a waiting runner tell who holds the lock (pg_stat_activity).
            "application_name": f"afterparty {socket.gethostname()} pid {os.getpid()}"[:63],
            "connect_timeout": max(2, int(min(10.0, self.connect_timeout))),
            **url.query,
        }
        options = {k: v for k, v in options.items() if v is not None}
        return self.open_with_retry(
            "PostgreSQL", 5432, lambda: psycopg.connect(autocommit=autocommit, **options),
            lambda exc: isinstance(exc, psycopg.OperationalError),
        )

    def connect(self) -> None:
        self.connection = self._open(autocommit=False)

    def is_missing_table(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.errors.UndefinedTable)

    def read_only_reason(self) -> str | None:
        (recovery, read_only), = self.query(
            "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')"
        )
        self.rollback()
        if recovery:
            return "the PostgreSQL server is a read-only hot standby; point afterparty at the primary"
        if read_only == "on":
            return "the PostgreSQL session is read-only (default_transaction_read_only is on)"
        return None

    def insert_returning_id(self, sql: str, params: Any) -> int:
        (new_id,), = self.query(sql + " RETURNING id", params)
        return int(new_id)

    def _key(self, prefix: str) -> int:
        """A signed 64-bit advisory lock key from database, schema and table prefix."""
        (schema,), = self.query("SELECT current_schema()")
        identity = f"afterparty|{self.url.database}|{schema}|{prefix}".encode()
        return int.from_bytes(hashlib.blake2b(identity, digest_size=8).digest(), "big", signed=True)

    def try_lock(self, prefix: str) -> bool:
        if self._lock_key is None:
            self._lock_key = self._key(prefix)
            self.rollback()
        if self._lock_connection is None:
            self._lock_connection = self._open(autocommit=True)
        row = self._lock_connection.execute(
            "SELECT pg_try_advisory_lock(%s)", (self._lock_key,)).fetchone()
        return bool(row[0])

    def release_lock(self) -> None:
        if self._lock_connection is not None:
            try:
                self._lock_connection.execute("SELECT pg_advisory_unlock_all()")
                self._lock_connection.close()
            except psycopg.Error:
                pass  # the server releases a dead session's locks itself
            self._lock_connection = None

    def lock_holder(self, prefix: str) -> str | None:
        key = self._lock_key if self._lock_key is not None else self._key(prefix)
        unsigned = key & 0xFFFFFFFFFFFFFFFF
        rows = self.query(
            "SELECT a.application_name, a.client_addr, a.backend_start FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
            "AND l.granted AND l.classid = %s AND l.objid = %s AND l.objsubid = 1",
            (unsigned >> 32, unsigned & 0xFFFFFFFF),
        )
        self.rollback()
        if not rows:
            return None
        application, client, started = rows[0]
        who = application.removeprefix("afterparty ").replace(" pid ", ", pid ") if application else ""
        host = f"host {who}" if who else f"client {client}"
        return f"{host}, since {started:%Y-%m-%d %H:%M:%S %Z}"

    def close(self) -> None:
        self.release_lock()
        super().close()


BACKEND: Any = PostgresBackend
