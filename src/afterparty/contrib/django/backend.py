"""Records on a Django database connection: whichever database it is, Django's transactions."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.db import Error, connections, transaction

from afterparty.backends import dialect_for, refuse_memory_database
from afterparty.backends.base import Connection, Database
from afterparty.backends.url import DatabaseURL
from afterparty.errors import ConfigError, DatabaseError

T = TypeVar("T")


class _RollBack(Exception):
    """Handed to an atomic block's exit to make it roll back."""


class DjangoConnection(Connection):
    """Runs every transaction as ``transaction.atomic()`` on one Django database alias.

    A task's body runs inside that atomic block and its success record is written through
    the same connection, so the task's ORM work and its record commit together.
    """

    driver_errors = (Error,)

    def __init__(self, alias: str, wrapper: Any = None) -> None:
        self.alias = alias
        # The lock's session is a connection of its own, outside Django's registry.
        self.wrapper = wrapper if wrapper is not None else connections[alias]
        self.wrapper.ensure_connection()
        self._atomic: Any = None

    def run(self, sql: str, params: Sequence[Any], read: Callable[[Any], T]) -> T:
        with self.wrapper.cursor() as cursor:  # Django's cursors take %s on every database
            cursor.execute(sql, tuple(params))
            return read(cursor)

    def begin(self) -> None:
        self._atomic = transaction.atomic(using=self.alias)
        self._atomic.__enter__()

    def commit(self) -> None:
        if self._atomic is not None:
            atomic, self._atomic = self._atomic, None
            atomic.__exit__(None, None, None)

    def rollback(self) -> None:
        if self._atomic is not None:
            atomic, self._atomic = self._atomic, None
            with contextlib.suppress(Error):
                atomic.__exit__(_RollBack, _RollBack(), None)

    @property
    def driver_connection(self) -> Any:
        return self.wrapper.connection

    begins_amid_autocommit = True  # Django autocommits outside atomic blocks; ``begin`` opens one

    def twin(self) -> Connection:
        wrapper = connections.create_connection(self.alias)
        wrapper.ensure_connection()  # Django's connections autocommit outside atomic blocks
        return DjangoConnection(self.alias, wrapper)

    def reopen(self) -> None:
        self.rollback()
        with contextlib.suppress(Error):
            self.wrapper.close()
        self.wrapper.ensure_connection()

    def close(self) -> None:
        self.rollback()
        if self.wrapper is not connections[self.alias]:
            with contextlib.suppress(Error):
                self.wrapper.close()


def django_database(alias: str) -> Database:
    """The records' database on the Django database ``alias``."""
    if alias not in connections.settings:
        raise ConfigError(
            f"AFTERPARTY['DATABASE'] names {alias!r}, which is not in DATABASES: "
            f"use one of {', '.join(sorted(connections.settings))}"
        )
    wrapper = connections[alias]
    if not wrapper.in_atomic_block:
        # What Django does as a request starts: a connection that broke (the server restarted)
        # or outlived CONN_MAX_AGE is not used again. `manage.py afterparty web` opens sessions
        # on its threads' connections for as long as it serves.
        wrapper.close_if_unusable_or_obsolete()
    url = _django_url(alias, wrapper)
    dialect = dialect_for(wrapper.vendor)
    try:
        connection = DjangoConnection(alias)
    except Error as exc:
        raise DatabaseError(f"cannot connect to Django database {alias!r} ({url.redacted}): "
                            f"{dialect.describe_error(exc)}; check DATABASES") from None
    return Database.prepared(url, dialect, connection)


def _django_url(alias: str, connection: Any) -> DatabaseURL:
    """The database of an alias as afterparty describes it (never with its password)."""
    settings = connection.settings_dict
    name = str(settings.get("NAME") or "")
    refuse_memory_database(connection.vendor, name, f"Django database {alias!r}",
                           "give it a file (NAME) or choose another alias with AFTERPARTY['DATABASE']")
    host, port = settings.get("HOST") or None, settings.get("PORT") or None
    user = settings.get("USER") or None
    where = name if connection.vendor == "sqlite" else (
        f"{user + '@' if user else ''}{host or 'localhost'}{':' + str(port) if port else ''}/{name}")
    return DatabaseURL(
        backend=connection.vendor, username=user, host=host, port=int(port) if port else None,
        database=name, redacted=f"django:{alias} ({connection.vendor} {where})",
    )
