"""What a task body receives as ``ctx``: logger, environment, release, database, notify."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from afterparty.errors import AfterpartyError


class TransactionOwnedError(AfterpartyError):
    """A task tried to end the transaction the runner owns."""


class TaskConnection:
    """The tracking database's connection, lent to a task inside its transaction.

    The runner commits the task's work together with its success record, so ending
    the transaction from the task would break that promise; everything else is the
    driver's own connection.
    """

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def commit(self) -> None:
        raise TransactionOwnedError(
            "ctx.db.commit() is not allowed: afterparty commits the task's work together "
            "with its success record when the task returns"
        )

    def rollback(self) -> None:
        raise TransactionOwnedError(
            "ctx.db.rollback() is not allowed: raise an exception to roll back the task's work"
        )

    def close(self) -> None:
        raise TransactionOwnedError("ctx.db.close() is not allowed: the runner owns the connection")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


class Context:
    """Everything a task body may use; passed as its only argument."""

    def __init__(
        self,
        *,
        version: str,
        name: str,
        env: str,
        release: str | None,
        attempt: int,
        idempotency_key: str,
        db: Any,
        log: logging.Logger,
        notify_urls: list[str],
        open_session: Callable[[], Any] | None = None,
    ) -> None:
        self.version = version
        self.name = name
        self.env = env
        self.release = release
        self.attempt = attempt
        self.idempotency_key = idempotency_key
        self.db = db
        self.log = log
        self.notify_urls = notify_urls
        self._open_session = open_session
        self._session: Any = None

    @property
    def session(self) -> Any:
        """A SQLAlchemy ``Session`` inside the task's transaction: its work commits with the record."""
        if self._session is None:
            if self._open_session is None:
                raise AfterpartyError("ctx.session is only available while the task runs")
            self._session = self._open_session()
        return self._session

    def notify(self, message: str, title: str | None = None) -> None:
        """Send ``message`` to every configured notification URL (or log it when none is)."""
        from afterparty.notify import send_notification

        send_notification(self.notify_urls, message, title, self.log)
