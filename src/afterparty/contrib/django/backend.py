"""Records on a Django database connection: the vendor's SQL and lock, Django's transactions."""

from __future__ import annotations

import contextlib
from typing import Any

from django.db import Error, connections, transaction

from afterparty.backends import DatabaseURL
from afterparty.backends.base import Backend
from afterparty.errors import ConfigError
from afterparty.integration import backend_over


class _RollBack(Exception):
    """Handed to an atomic block's exit to make it roll back."""


class DjangoConnection(Backend):
    """Runs every transaction as ``transaction.atomic()`` on one Django database alias.

    A task's body runs inside that atomic block and its success record is written through
    the same connection, so the task's ORM work and its record commit together.
    """

    placeholder = "%s"  # Django's cursors take %s on every database

    def __init__(self, url: DatabaseURL, connect_timeout: float = 30.0, alias: str = "default") -> None:
        super().__init__(url, connect_timeout)
        self.alias = alias
        self._atomic: Any = None

    @property
    def driver_errors(self) -> tuple[type[BaseException], ...]:
        return (Error,)

    def connect(self) -> None:
        self.connection = connections[self.alias]
        self._guard(self.connection.ensure_connection)

    def open_connection(self, autocommit: bool) -> Any:
        # Only the lock asks for a second connection; Django's connections autocommit.
        connection = connections.create_connection(self.alias)
        self._guard(connection.ensure_connection)
        return connection

    def begin(self) -> None:
        self._atomic = transaction.atomic(using=self.alias)
        self._atomic.__enter__()

    def commit(self) -> None:
        if self._atomic is not None:
            atomic, self._atomic = self._atomic, None
            self._guard(lambda: atomic.__exit__(None, None, None))

    def rollback(self) -> None:
        if self._atomic is not None:
            atomic, self._atomic = self._atomic, None
            with contextlib.suppress(*self.driver_errors):
                atomic.__exit__(_RollBack, _RollBack(), None)


def django_backend(alias: str, connect_timeout: float = 30.0) -> Backend:
    """A connected backend on the Django database ``alias``."""
    if alias not in connections.settings:
        raise ConfigError(
            f"AFTERPARTY['DATABASE'] names {alias!r}, which is not in DATABASES: "
            f"use one of {', '.join(sorted(connections.settings))}"
        )
    connection = connections[alias]
    backend: Backend = backend_over(DjangoConnection, connection.vendor)(
        _django_url(alias, connection), connect_timeout, alias=alias)
    backend.connect()
    return backend


def _django_url(alias: str, connection: Any) -> DatabaseURL:
    """The database of an alias as afterparty describes it (never with its password)."""
    settings = connection.settings_dict
    name = str(settings.get("NAME") or "")
    if connection.vendor == "sqlite" and (not name or name == ":memory:" or "mode=memory" in name):
        raise ConfigError(
            f"Django database {alias!r} is in memory: it would forget what ran; "
            "give it a file (NAME) or choose another alias with AFTERPARTY['DATABASE']"
        )
    host, port = settings.get("HOST") or None, settings.get("PORT") or None
    user = settings.get("USER") or None
    where = name if connection.vendor == "sqlite" else (
        f"{user + '@' if user else ''}{host or 'localhost'}{':' + str(port) if port else ''}/{name}")
    return DatabaseURL(
        backend=connection.vendor, username=user, host=host, port=int(port) if port else None,
        database=name, redacted=f"django:{alias} ({connection.vendor} {where})",
    )
