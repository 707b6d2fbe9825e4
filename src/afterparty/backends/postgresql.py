"""PostgreSQL through psycopg 3, with a session advisory lock on a connection of its own."""

from __future__ import annotations

import hashlib
import os
import socket
from typing import Any, ClassVar

from afterparty.backends.base import Backend, error_chain
from afterparty.errors import DatabaseError

UNDEFINED_TABLE = "42P01"


def _psycopg() -> Any:
    """The driver, imported when a connection is opened (Django may bring its own)."""
    try:
        import psycopg
    except ImportError:  # exercised by a test in a venv without the driver
        raise DatabaseError(
            "the PostgreSQL driver is not installed: pip install 'afterparty[postgres]'"
        ) from None
    return psycopg


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
    _lock_key: int | None = None

    @property
    def driver_errors(self) -> tuple[type[BaseException], ...]:
        return (_psycopg().Error,)

    def open_connection(self, autocommit: bool) -> Any:
        psycopg = _psycopg()
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

    def is_missing_table(self, exc: BaseException) -> bool:
        # psycopg 3 says sqlstate, psycopg2 (under Django) pgcode.
        return any(UNDEFINED_TABLE in (getattr(e, "sqlstate", None), getattr(e, "pgcode", None))
                   for e in error_chain(exc))

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
        (got,), = self.lock_query("SELECT pg_try_advisory_lock(%s)", (self._lock_key,))
        return bool(got)

    def release_lock(self) -> None:
        self.close_lock_connection("SELECT pg_advisory_unlock_all()")

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
